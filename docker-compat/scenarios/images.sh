# Image scenarios against the private registry $REG (fixtures: busybox, layers,
# traversal, symlinkesc, badblob) and the misbehaving one beside it, $BADREG
# (notjson, truncated; 404 for anything else).

# The digest of a fixture's manifest, as built.
fixture_digest() {
  python3 -c 'import json,sys;print(json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"])' "$WORK/registry/oci/$1"
}

scenario_pull_by_tag_and_by_digest() {
  start_berthd pull
  local out; out=$(d pull pull "$REG/library/busybox")
  expect_contains "$out" "Pull complete"
  expect_contains "$out" "Digest: $(fixture_digest busybox)"
  expect_contains "$out" "Status: Downloaded newer image for $REG/library/busybox:latest"
  expect_contains "$(d pull pull "$REG/library/busybox:latest")" "Status: Image is up to date for $REG/library/busybox:latest"
  out=$(d pull pull "$REG/library/layers@$(fixture_digest layers)")
  expect_contains "$out" "Pull complete"
  expect_eq "$(d pull images --format '{{.Repository}}:{{.Tag}}' | sort | tr '\n' ' ')" "$REG/library/busybox:latest $REG/library/layers:<none> "
  expect_eq "$(d pull images --digests --format '{{.Digest}}' "$REG/library/layers")" "$(fixture_digest layers)"
}

scenario_images_format_and_filters() {
  start_berthd imgs
  d imgs pull -q "$REG/library/busybox" >/dev/null
  d imgs pull -q "$REG/library/layers" >/dev/null
  expect_eq "$(d imgs images -q | wc -l)" "2"
  expect_eq "$(d imgs images --filter "reference=*/library/lay*" --format '{{.Repository}}')" "$REG/library/layers"
  expect_eq "$(d imgs images --filter dangling=true -q)" ""
  expect_eq "$(d imgs images --format '{{.Size}}' "$REG/library/busybox")" "1.99MB"
  expect_eq "$(d imgs images --filter "before=$REG/library/layers" --format '{{.Repository}}')" "$REG/library/busybox"
  expect_eq "$(d imgs info --format '{{.Images}}')" "2"
}

scenario_tag_rmi_and_conflicts() {
  start_berthd tagrm
  d tagrm pull -q "$REG/library/busybox" >/dev/null
  local id; id=$(d tagrm images -q "$REG/library/busybox")
  d tagrm tag "$REG/library/busybox" mybox:1
  expect_eq "$(d tagrm images -q mybox:1)" "$id"
  local out
  if out=$(d tagrm rmi "$id" 2>&1); then fail "rmi of an image with two tags needs -f"; fi
  expect_contains "$out" "conflict: unable to delete $id (must be forced) - image is referenced in multiple repositories"
  expect_eq "$(d tagrm rmi mybox:1)" "Untagged: mybox:1"
  out=$(d tagrm rmi "$REG/library/busybox")
  expect_contains "$out" "Untagged: $REG/library/busybox:latest"
  expect_contains "$out" "Deleted: sha256:$id"
  expect_eq "$(d tagrm images -q)" ""
  if out=$(d tagrm rmi nosuch 2>&1); then fail "rmi of a missing image succeeded"; fi
  expect_contains "$out" "No such image: nosuch"
}

scenario_inspect_and_history() {
  start_berthd insp
  d insp pull -q "$REG/library/layers" >/dev/null
  expect_eq "$(d insp image inspect -f '{{.Config.Cmd}} {{.Os}}/{{.Architecture}} {{len .RootFS.Layers}}' "$REG/library/layers")" "[sh] linux/amd64 3"
  expect_eq "$(d insp history --format '{{.CreatedBy}}' "$REG/library/layers" | tr '\n' ',')" "berth fixture: layers-3,berth fixture: layers-2,berth fixture: layers-1,"
  local out
  if out=$(d insp image inspect nosuch 2>&1); then fail "inspect of a missing image succeeded"; fi
  expect_contains "$out" "No such image: nosuch"
}

scenario_pull_through_a_registry_mirror() {
  start_berthd mirror --registry-mirror "http://$REG"
  local out; out=$(d mirror pull busybox)
  expect_contains "$out" "Status: Downloaded newer image for busybox:latest"
  expect_eq "$(d mirror images --format '{{.Repository}}:{{.Tag}}')" "busybox:latest"
  expect_contains "$(d mirror info)" "Registry Mirrors:
  http://$REG/"
}

scenario_bad_pulls_fail_cleanly() {
  start_berthd bad
  d bad pull -q "$REG/library/busybox" >/dev/null
  local before; before=$(ls "$WORK/bad/data/overlay2" "$WORK/bad/data/blobs/sha256" | sort)
  local out
  if out=$(d bad pull "$REG/library/traversal" 2>&1); then fail "traversal layer accepted"; fi
  expect_contains "$out" "'..' is not allowed in a layer"
  if out=$(d bad pull "$REG/library/symlinkesc" 2>&1); then fail "symlink escape accepted"; fi
  expect_contains "$out" "goes through a symlink"
  if out=$(d bad pull "$REG/library/badblob" 2>&1); then fail "a blob with the wrong digest was accepted"; fi
  expect_contains "$out" "Invalid digest"
  if out=$(d bad pull "$REG/library/nosuch" 2>&1); then fail "a missing image was pulled"; fi
  expect_contains "$out" "manifest for $REG/library/nosuch:latest not found: manifest unknown"
  if out=$(d bad pull "$BADREG/library/notjson" 2>&1); then fail "a manifest that is not JSON was accepted"; fi
  expect_contains "$out" "the registry sent a manifest that is not JSON"
  if out=$(d bad pull "Bad/Name" 2>&1); then fail "a bad reference was accepted"; fi
  expect_contains "$out" "invalid reference format"
  [ ! -e /tmp/escaped-by-berth-test ] || fail "a layer wrote outside its directory"
  expect_eq "$(ls "$WORK/bad/data/overlay2" "$WORK/bad/data/blobs/sha256" | sort)" "$before"
  expect_eq "$(d bad images -q | wc -l)" "1"
}

scenario_image_prune_and_system_df() {
  start_berthd prune
  d prune pull -q "$REG/library/busybox" >/dev/null
  d prune pull -q "$REG/library/layers@$(fixture_digest layers)" >/dev/null
  local out; out=$(d prune system df --format '{{.Type}} {{.TotalCount}}')
  expect_contains "$out" "Images 2"
  out=$(d prune image prune -f)
  expect_contains "$out" "deleted: sha256:"
  expect_eq "$(d prune images --format '{{.Repository}}')" "$REG/library/busybox"
  d prune image prune -a -f >/dev/null
  expect_eq "$(d prune images -q)" ""
  expect_eq "$(ls "$WORK/prune/data/overlay2")" "l"
}

scenario_load_a_docker_archive() {
  start_berthd load
  skopeo --insecure-policy copy -q "oci:$WORK/registry/oci/busybox:latest" "docker-archive:$WORK/load/bb.tar:loaded:1"
  expect_eq "$(d load load -i "$WORK/load/bb.tar")" "Loaded image: loaded:1"
  expect_eq "$(d load images --format '{{.Repository}}:{{.Tag}}')" "loaded:1"
  local out
  echo "not a tar" > "$WORK/load/bad.tar"
  if out=$(d load load -i "$WORK/load/bad.tar" 2>&1); then fail "a bad archive was loaded"; fi
  expect_eq "$out" "Error processing tar file(exit status 1): unexpected EOF"
  # One cut short (its entries' data run past the end), as dockerd words it.
  head -c 300000 "$WORK/load/bb.tar" > "$WORK/load/cut.tar"
  if out=$(d load load -i "$WORK/load/cut.tar" 2>&1); then fail "a cut archive was loaded"; fi
  expect_eq "$out" "Error processing tar file(exit status 1): unexpected EOF"
  # A tar that is no image archive: the error ends a 200 stream.
  tar cf "$WORK/load/plain.tar" -C "$WORK/load" bad.tar
  expect_eq "$(api load -w ' %{http_code}' -X POST --data-binary @"$WORK/load/plain.tar" http://berth/images/load)" \
    '{"errorDetail":{"message":"invalid image archive: neither manifest.json nor index.json found"},"error":"invalid image archive: neither manifest.json nor index.json found"}
 200'
  # docker-py: images.load raises ImageLoadError on that (not APIError), and
  # get_image's chunks go straight to load_image (chunked).
  local py
  py=$(py_client docker-py) || { fail "installing docker-py"; return 1; }
  expect_eq "$("$py" - "unix://$(sock load)" <<'PY'
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1], version="1.41")
try:
    c.images.load(b"abc")
except docker.errors.ImageLoadError as e:
    print("ImageLoadError:", e)
print(list(c.api.load_image(c.api.get_image("loaded:1"))))
PY
)" "ImageLoadError: Error processing tar file(exit status 1): unexpected EOF
[{'stream': 'Loaded image: loaded:1\n'}]"
}

scenario_save_rmi_load_round_trip() {
  start_berthd save
  d save pull -q "$REG/library/layers" >/dev/null
  local id; id=$(d save images -q "$REG/library/layers")
  d save save -o "$WORK/save/layers.tar" "$REG/library/layers"
  d save rmi "$REG/library/layers" >/dev/null
  expect_eq "$(d save images -q)" ""
  expect_eq "$(d save load -i "$WORK/save/layers.tar")" "Loaded image: $REG/library/layers:latest"
  expect_eq "$(d save images -q "$REG/library/layers")" "$id"
  expect_eq "$(d save history -q "$REG/library/layers" | head -1)" "$id"
}

scenario_push_rmi_pull_back() {
  start_berthd push
  d push pull -q "$REG/library/busybox" >/dev/null
  local id; id=$(d push images -q "$REG/library/busybox")
  d push tag "$REG/library/busybox" "$REG/compat/pushed:1"
  local out; out=$(d push push "$REG/compat/pushed:1")
  expect_contains "$out" "The push refers to repository [$REG/compat/pushed]"
  expect_contains "$out" "1: digest: $(fixture_digest busybox)"
  d push rmi "$REG/compat/pushed:1" "$REG/library/busybox" >/dev/null
  expect_eq "$(d push images -q)" ""
  d push pull -q "$REG/compat/pushed:1" >/dev/null
  expect_eq "$(d push images -q)" "$id"
  if out=$(d push push "$REG/compat/absent:1" 2>&1); then fail "pushing a missing image succeeded"; fi
  expect_contains "$out" "An image does not exist locally with the tag: $REG/compat/absent"
}

scenario_truncated_download_leaves_nothing() {
  start_berthd trunc
  local out
  if out=$(d trunc pull "$BADREG/library/truncated" 2>&1); then fail "a truncated layer was accepted"; fi
  expect_contains "$out" "unexpected EOF"
  expect_eq "$(ls "$WORK/trunc/data/overlay2")" "l"
  expect_eq "$(ls "$WORK/trunc/data/blobs/sha256" | wc -l)" "0"
  expect_eq "$(d trunc images -q)" ""
}

scenario_mirror_without_the_image_falls_back_to_the_source() {
  start_berthd fallback --registry-mirror "http://$BADREG" --docker-hub-endpoint "$REG"
  local out; out=$(d fallback pull busybox)
  expect_contains "$out" "Status: Downloaded newer image for busybox:latest"
  expect_eq "$(d fallback images --format '{{.Repository}}:{{.Tag}}')" "busybox:latest"
}

scenario_import_with_changes_and_label_filter() {
  start_berthd import
  mkdir -p "$WORK/import/root/etc"
  echo hello > "$WORK/import/root/etc/hello.txt"
  tar -C "$WORK/import/root" -cf "$WORK/import/root.tar" .
  local id; id=$(d import import -c 'CMD ["/bin/sh"]' -c 'LABEL tier=web' -m "first import" "$WORK/import/root.tar" imported/app:v1)
  expect_contains "$id" "sha256:"
  expect_eq "$(d import inspect --format '{{json .Config.Cmd}} {{.Comment}} {{.Os}}' imported/app:v1)" '["/bin/sh"] first import linux'
  expect_eq "$(d import images --filter label=tier=web --format '{{.Repository}}:{{.Tag}}')" "imported/app:v1"
  gzip -c "$WORK/import/root.tar" | d import import - imported/gz >/dev/null
  expect_eq "$(d import images --filter label=tier --format '{{.Repository}}')" "imported/app"
  expect_eq "$(d import history --format '{{.Comment}}' imported/app:v1)" "first import"
  local out
  if out=$(d import import -c 'RUN ls' "$WORK/import/root.tar" 2>&1); then fail "RUN accepted as a change"; fi
  expect_contains "$out" "run is not a valid change command"
  expect_eq "$(d import images -q | wc -l)" "2"
}

# login_registry NAME MODE: a registry requiring alice/s3cret (MODE basic or
# token) under $WORK/NAME-registry, stopped by the suite's cleanup. Prints host:port.
login_registry() {
  local port
  port=$(BERTH_REGISTRY_AUTH=$2 BERTH_REGISTRY_USER=alice BERTH_REGISTRY_PASSWORD=s3cret \
    bash "$here/lib/test-registry.sh" start "$WORK/$1-registry" | tail -1)
  echo "127.0.0.1:$port"
}

scenario_login_then_pull_basic_and_token() {
  start_berthd login
  local mode reg out
  for mode in basic token; do
    reg=$(login_registry "login-$mode" "$mode")
    if out=$(d login pull "$reg/library/busybox" 2>&1); then fail "$mode: anonymous pull succeeded"; fi
    expect_contains "$out" "unauthorized"
    if out=$(echo wrong | d login login -u alice --password-stdin "$reg" 2>&1); then fail "$mode: a wrong password logged in"; fi
    expect_contains "$(echo s3cret | d login login -u alice --password-stdin "$reg" 2>&1)" "Login Succeeded"
    expect_contains "$(d login pull "$reg/library/busybox")" "Downloaded newer image"
  done
  expect_eq "$(d login images -q | sort -u | wc -l)" "1"
}

scenario_vfs_storage_driver() {
  mkdir -p "$WORK/vfs" && echo '{"storage-driver": "vfs"}' > "$WORK/vfs/daemon.json"
  start_berthd vfs
  expect_eq "$(d vfs info --format '{{.Driver}}')" "vfs"
  d vfs pull -q "$REG/library/layers" >/dev/null
  expect_eq "$(d vfs inspect --format '{{.GraphDriver.Name}}' "$REG/library/layers")" "vfs"
  expect_eq "$(ls "$WORK/vfs/data/vfs/dir" | wc -l)" "3"
  d vfs rmi "$REG/library/layers" >/dev/null
  expect_eq "$(ls "$WORK/vfs/data/vfs/dir" | wc -l)" "0"
}
