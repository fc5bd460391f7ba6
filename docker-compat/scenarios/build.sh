# docker build through the classic builder (DOCKER_BUILDKIT=0, POST /build
# version 1), each expectation read off the reference dockerd 20.10 with the
# same Dockerfile: the output line for line (IDs aside), the image's history
# and config, the exit code and words of a failing step, what stays behind.

build_out() { # name dir args...: the CLI's output without its deprecation notice
  local name=$1 dir=$2; shift 2
  DOCKER_BUILDKIT=0 d "$name" build "$@" "$dir" 2>&1 | grep -v 'DEPRECATED\|BuildKit is currently\|environment-variable\|^Sending build context\|^$' | sed -E 's/[0-9a-f]{12}/<id>/g'
  return "${PIPESTATUS[0]}"
}

scenario_build_runs_steps_and_names_the_image_as_dockerd() {
  start_with_busybox bd
  local ctx=$WORK/bd-ctx out
  mkdir -p "$ctx/d"
  printf 'hello\n' > "$ctx/f"
  echo x > "$ctx/d/x"
  cat > "$ctx/Dockerfile" <<'DF'
FROM busybox
RUN echo hi; echo err >&2
ENV a=b
COPY f /f
COPY d /dd/
WORKDIR /app
RUN pwd > /where && ls /dd
CMD ["sh"]
DF
  out=$(build_out bd "$ctx" -t built:1)
  expect_eq "$out" "Step 1/8 : FROM busybox
 ---> <id>
Step 2/8 : RUN echo hi; echo err >&2
 ---> Running in <id>
hi
"$'\e'"[91merr
"$'\e'"[0mRemoving intermediate container <id>
 ---> <id>
Step 3/8 : ENV a=b
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 4/8 : COPY f /f
 ---> <id>
Step 5/8 : COPY d /dd/
 ---> <id>
Step 6/8 : WORKDIR /app
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 7/8 : RUN pwd > /where && ls /dd
 ---> Running in <id>
x
Removing intermediate container <id>
 ---> <id>
Step 8/8 : CMD [\"sh\"]
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Successfully built <id>
Successfully tagged built:1"
  # What it made: the files, the environment, the working directory.
  expect_eq "$(d bd run --rm built:1 sh -c 'cat /f /where /dd/x; echo $a; pwd')" "hello
/app
x
b
/app"
  expect_eq "$(d bd inspect -f '{{json .Config.Cmd}} {{.Config.WorkingDir}} {{len .RootFS.Layers}}' built:1)" '["sh"] /app 5'
  # History as dockerd writes it (a RUN that changed nothing adds no layer).
  expect_eq "$(d bd history --no-trunc --format '{{.CreatedBy}}|{{.Size}}' built:1 | head -7 | sed -E 's/(file|dir):[0-9a-f]{64}/\1:<h>/')" \
'/bin/sh -c #(nop)  CMD ["sh"]|0B
/bin/sh -c pwd > /where && ls /dd|5B
/bin/sh -c #(nop) WORKDIR /app|0B
/bin/sh -c #(nop) COPY dir:<h> in /dd/ |2B
/bin/sh -c #(nop) COPY file:<h> in /f |6B
/bin/sh -c #(nop)  ENV a=b|0B
/bin/sh -c echo hi; echo err >&2|0B'
  # The steps' images are intermediate: only -a lists them; no container stays.
  expect_eq "$(d bd images --format '{{.Repository}}:{{.Tag}}' | sort)" "built:1
busybox:latest"
  expect_eq "$(d bd images -aq | wc -l)" "8"
  expect_eq "$(d bd ps -aq | wc -l)" "0"
  # A step's image has a child: it cannot go alone; the tagged one takes them all.
  out=$(d bd rmi "$(d bd images -aq | sed -n 2p)" 2>&1) && fail "removed an image with a child"
  expect_contains "$out" "(cannot be forced) - image has dependent child images"
  d bd rmi built:1 >/dev/null
  expect_eq "$(d bd images -aq | wc -l)" "1"
  # -q: the ID alone.
  expect_eq "$(DOCKER_BUILDKIT=0 d bd build -q "$ctx" 2>/dev/null | sed -E 's/[0-9a-f]{64}/<id>/')" "sha256:<id>"
}

scenario_build_failures_in_dockerds_words_and_exit_codes() {
  start_with_busybox bf
  local ctx=$WORK/bf-ctx out rc
  mkdir -p "$ctx"
  printf 'FROM busybox\nARG V=1\nRUN echo out; echo err >&2; exit 7\n' > "$ctx/Dockerfile"
  out=$(build_out bf "$ctx" --build-arg X=2) && fail "a failing RUN built"
  rc=$?
  expect_eq "$rc" "7"
  expect_eq "$(tail -3 <<<"$out")" "out
"$'\e'"[91merr
"$'\e'"[0mThe command '/bin/sh -c echo out; echo err >&2; exit 7' returned a non-zero code: 7"
  # The failed step's container stays (rm only removes after success)...
  expect_eq "$(d bf ps -a --format '{{.State}} {{.Command}}')" "exited \"/bin/sh -c 'echo ou…\""
  expect_eq "$(d bf inspect -f '{{.State.ExitCode}}' "$(d bf ps -aq)")" "7"
  d bf rm "$(d bf ps -aq)" >/dev/null
  # ...unless --force-rm.
  build_out bf "$ctx" --force-rm >/dev/null && fail "a failing RUN built"
  expect_eq "$(d bf ps -aq | wc -l)" "0"
  # Before any step: the status and dockerd's words.
  printf 'FROM busybox\nFOO bar\n' > "$ctx/Dockerfile"
  out=$(build_out bf "$ctx") && fail "built an unknown instruction"
  expect_eq "$out" "Error response from daemon: dockerfile parse error line 2: unknown instruction: FOO"
  rm "$ctx/Dockerfile"
  expect_eq "$(tar -cf - -C "$ctx" . | api bf -w ' %{http_code}' -X POST -H 'Content-Type: application/x-tar' --data-binary @- http://berth/build)" \
    '{"message":"Cannot locate specified Dockerfile: Dockerfile"} 500'
  expect_eq "$(api bf -w ' %{http_code}' -X POST --data-binary 'FROM busybox' http://berth/build)" \
    '{"message":"unexpected EOF"} 500'
  printf 'FROM busybox\n' > "$ctx/Dockerfile"
  expect_eq "$(build_out bf "$ctx" --target nosuch | tail -1)" \
    "Error response from daemon: failed to reach build target nosuch in Dockerfile"
}

scenario_build_stages_args_and_copy_from() {
  start_with_busybox bm
  local ctx=$WORK/bm-ctx
  mkdir -p "$ctx"
  cat > "$ctx/Dockerfile" <<'DF'
FROM busybox AS base
ARG GREETING=hello
RUN echo "$GREETING" > /greeting
FROM busybox
COPY --from=base /greeting /copied
LABEL stage=final
DF
  expect_eq "$(build_out bm "$ctx" --build-arg GREETING=hi --build-arg UNUSED=1 -t ms:1 | tail -8)" " ---> <id>
Step 6/6 : LABEL stage=final
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
[Warning] One or more build-args [UNUSED] were not consumed
Successfully built <id>
Successfully tagged ms:1"
  expect_eq "$(d bm run --rm ms:1 cat /copied)" "hi"
  expect_eq "$(d bm inspect -f '{{index .Config.Labels "stage"}}' ms:1)" "final"
  # --target stops at the named stage; the ARG's default without --build-arg.
  build_out bm "$ctx" --target base -t base:1 >/dev/null
  expect_eq "$(d bm run --rm base:1 cat /greeting)" "hello"
  expect_eq "$(d bm run --rm base:1 ls /copied 2>&1)" "ls: /copied: No such file or directory"
}

scenario_build_cache_hits_as_dockerds_and_survives_a_kill() {
  start_with_busybox bc
  local ctx=$WORK/bc-ctx first steps
  mkdir -p "$ctx/d"
  echo one > "$ctx/f"
  echo x > "$ctx/d/x"
  cat > "$ctx/Dockerfile" <<'DF'
FROM busybox
ARG V=1
ENV E=e
RUN echo "$V" > /v
COPY f /f
COPY d /d/
WORKDIR /w
EXPOSE 80
USER 1
CMD ["sh"]
DF
  # The steps each line of output says were cached, as dockerd 20.10 gives
  # them for the same Dockerfile and changes.
  steps() { build_out bc "$ctx" -t cache:1 "$@" | awk '/^Step/{s=$2} /Using cache/{printf "%s ", s}'; }
  build_out bc "$ctx" -t cache:1 >/dev/null
  first=$(d bc images -q --no-trunc cache:1)
  expect_eq "$(steps)" "2/10 3/10 4/10 5/10 6/10 7/10 8/10 9/10 10/10 " "a rebuild is all cache"
  expect_eq "$(d bc images -q --no-trunc cache:1)" "$first"
  # New mtimes, same content: still cached (the hash is the files', not their times).
  touch "$ctx/f" "$ctx/d/x"
  expect_eq "$(steps)" "2/10 3/10 4/10 5/10 6/10 7/10 8/10 9/10 10/10 " "after touch"
  # A changed file misses from its COPY on; a changed build arg from the RUN on.
  echo two > "$ctx/f"
  expect_eq "$(steps)" "2/10 3/10 4/10 " "after a file changed"
  expect_eq "$(steps --build-arg V=2)" "2/10 3/10 " "with another build arg"
  expect_eq "$(d bc run --rm cache:1 cat /v /f)" "2
two"
  expect_eq "$(steps --no-cache)" "" "with --no-cache"
  # The steps' images name their history lines, as dockerd's history.
  expect_eq "$(d bc history -q cache:1 | grep -vc missing)" "10"
  # Killed and started again: the cache is still there.
  first=$(d bc images -q --no-trunc cache:1)
  stop_berthd bc KILL
  START_WAIT=30 start_berthd bc --registry-mirror "http://$REG"
  expect_eq "$(steps)" "2/10 3/10 4/10 5/10 6/10 7/10 8/10 9/10 10/10 " "after a kill -9"
  expect_eq "$(d bc images -q --no-trunc cache:1)" "$first"
}

scenario_build_copy_globs_add_archives_and_scratch() {
  start_with_busybox bg
  local ctx=$WORK/bg-ctx out
  mkdir -p "$ctx/src/sub" "$ctx/pk"
  echo a > "$ctx/src/a.txt"; echo b > "$ctx/src/b.txt"; echo c > "$ctx/src/c.md"
  echo s > "$ctx/src/sub/s.txt"; echo p > "$ctx/pk/inside"
  tar -czf "$ctx/pk.tgz" -C "$ctx" pk
  tar -cJf "$ctx/pk.txz" -C "$ctx" pk
  tar -cjf "$ctx/pk.tbz" -C "$ctx" pk
  echo notatar > "$ctx/plain.gz"
  cat > "$ctx/Dockerfile" <<'DF'
FROM busybox AS base
COPY src/*.txt /globbed/
ADD pk.tgz /gz/
ADD pk.txz /xz
ADD pk.tbz /bz/
ADD plain.gz /plain/
COPY src/s* /s/
FROM scratch AS sc
COPY --from=base /globbed /g
COPY src/a.txt /
ENV K=v
FROM base
COPY --from=1 / /fromscratch/
RUN find /globbed /gz /xz /bz /plain /s /fromscratch | sort | tr '\n' ' '
DF
  # What dockerd 20.10 lists for the same context: globs match whole
  # relative paths (a matched directory gives its contents), local
  # archives unpack whatever their compression, a non-archive is copied.
  out=$(build_out bg "$ctx" -t g:1)
  expect_contains "$out" "/bz /bz/pk /bz/pk/inside /fromscratch /fromscratch/a.txt /fromscratch/g /fromscratch/g/a.txt /fromscratch/g/b.txt /globbed /globbed/a.txt /globbed/b.txt /gz /gz/pk /gz/pk/inside /plain /plain/plain.gz /s /s/s.txt /xz /xz/pk /xz/pk/inside "
  # A stage FROM scratch: its first COPY is its first layer; PATH as dockerd sets it.
  build_out bg "$ctx" --target sc -t sc:1 >/dev/null
  expect_eq "$(d bg history --format '{{.CreatedBy}}|{{.Size}}' --no-trunc sc:1 | sed -E 's/[0-9a-f]{64}/H/')" '/bin/sh -c #(nop)  ENV K=v|0B
/bin/sh -c #(nop) COPY file:H in / |2B
/bin/sh -c #(nop) COPY dir:H in /g |4B'
  expect_eq "$(d bg inspect -f '{{json .Config.Env}} {{len .RootFS.Layers}}' sc:1)" \
    '["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","K=v"] 2'
  # The context compressed with bzip2 or xz, as dockerd takes it; a
  # Dockerfile from stdin next to a context (the CLI sends that tar unterminated).
  expect_eq "$(tar -cjf - -C "$ctx" . | DOCKER_BUILDKIT=0 d bg build -q - 2>/dev/null)" "$(d bg images -q --no-trunc g:1)"
  expect_eq "$(tar -cJf - -C "$ctx" . | DOCKER_BUILDKIT=0 d bg build -q - 2>/dev/null)" "$(d bg images -q --no-trunc g:1)"
  out=$(printf 'FROM busybox\nCOPY src/a.txt src/b.txt /m\n' | build_out bg "$ctx" -f -) && fail "copied two files onto one"
  expect_eq "$(tail -1 <<<"$out")" "When using COPY with more than one source file, the destination must be a directory and end with a /"
  out=$(printf 'FROM busybox\nCOPY nomatch* /m/\n' | build_out bg "$ctx" -f -) && fail "copied nothing"
  expect_eq "$(tail -1 <<<"$out")" "COPY failed: no source files were specified"
  expect_eq "$(d bg ps -aq | wc -l)" "0"
}

scenario_build_every_instruction_gives_dockerds_config_and_files() {
  start_with_busybox be
  local ctx=$WORK/be-ctx out
  mkdir -p "$ctx/dir"
  echo f > "$ctx/f"; echo in > "$ctx/dir/in"
  cat > "$ctx/Dockerfile" <<'DF'
# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM $BASE AS build
ARG WHO=world
ENV GREETING="hello ${WHO}" HOME_DIR=/home/app
LABEL org.example.name="every instruction" version=1
EXPOSE 8080 9090/udp
WORKDIR $HOME_DIR
COPY --chown=1000:1000 f ./owned
COPY dir/ ./dir/
ADD f /added
RUN chmod 750 /added && echo "$GREETING" > /greeting
SHELL ["/bin/sh", "-ec"]
RUN test -f /greeting
USER nobody
VOLUME /data
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=2s --retries=2 CMD true
ONBUILD COPY f /from-trigger
ONBUILD RUN echo child > /tmp/child
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /greeting"]
DF
  DOCKER_BUILDKIT=0 d be build -q --build-arg WHO=berth -t every:1 "$ctx" >/dev/null 2>&1 || fail "the build failed"
  # The config, the files, their owners and modes as dockerd 20.10 makes them.
  expect_eq "$(d be inspect -f '{{json .Config}}' every:1)" '{"User":"nobody","ExposedPorts":{"8080/tcp":{},"9090/udp":{}},"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","GREETING=hello berth","HOME_DIR=/home/app"],"Entrypoint":["/bin/sh","-c"],"Cmd":["cat /greeting"],"Volumes":{"/data":{}},"WorkingDir":"/home/app","Labels":{"org.example.name":"every instruction","version":"1"},"StopSignal":"SIGUSR1","Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":5000000000,"Timeout":2000000000,"Retries":2},"OnBuild":["COPY f /from-trigger","RUN echo child > /tmp/child"],"Shell":["/bin/sh","-ec"]}'
  expect_eq "$(d be run --rm every:1)" "hello berth"
  expect_eq "$(d be run --rm --entrypoint sh every:1 -c 'id -u; stat -c "%n %u:%g %a" /home/app/owned /home/app/dir/in /added; pwd')" "65534
/home/app/owned 1000:1000 644
/home/app/dir/in 0:0 644
/added 0:0 750
/home/app"
  # A child build runs the triggers first, as steps of its FROM, and does not pass them on.
  printf 'FROM every:1\nUSER root\nRUN cat /tmp/child /from-trigger\n' > "$ctx/Dockerfile"
  out=$(build_out be "$ctx" -t child:1)
  expect_eq "$(head -4 <<<"$out")" "Step 1/3 : FROM every:1
# Executing 2 build triggers
 ---> Running in <id>
Removing intermediate container <id>"
  expect_contains "$out" "child
f
Removing intermediate container"
  expect_eq "$(d be inspect -f '{{json .Config.OnBuild}}' child:1)" "null"
}

scenario_build_stays_in_its_context_and_follows_dockerds_rules() {
  start_with_busybox bs
  local ctx=$WORK/bs-ctx out victim=$WORK/bs-victim rel
  mkdir -p "$ctx"
  # dockerfile= naming a host path, excluded by .dockerignore: dockerd reads
  # and removes it inside the context only; the host file stays.
  echo 'FROM busybox' > "$victim"
  rel=${victim#/}
  mkdir -p "$ctx/$(dirname "$rel")"
  echo 'FROM busybox' > "$ctx/$rel"
  printf '%s\n' "$rel" > "$ctx/.dockerignore"
  tar -cf - -C "$ctx" . | api bs -o /dev/null -X POST -H 'Content-Type: application/x-tar' --data-binary @- "http://berth/build?dockerfile=$victim"
  expect_eq "$(cat "$victim" 2>&1)" "FROM busybox" "the host file named by dockerfile= is untouched"
  rm -rf "$ctx"; mkdir -p "$ctx"
  # Symlinked sources are followed in the context; WORKDIR makes its
  # directory; a CMD of the stage survives a later ENTRYPOINT; -t without a tag.
  echo real > "$ctx/real.txt"; ln -s real.txt "$ctx/link"
  printf 'FROM busybox\nWORKDIR /app\nCOPY real.txt .\nCOPY link /l1\nCMD ["hi"]\nENTRYPOINT ["echo"]\n' > "$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 d bs build -q -t notag "$ctx" >/dev/null 2>&1 || fail "the build failed"
  expect_eq "$(d bs run --rm --entrypoint cat notag /app/real.txt /l1)" "real
real"
  expect_eq "$(d bs run --rm notag)" "hi"
  # A parent removed by tag is only untagged: its child still needs it.
  printf 'FROM notag\nRUN true\n' > "$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 d bs build -q -t child:1 "$ctx" >/dev/null 2>&1 || fail "the child build failed"
  expect_eq "$(d bs rmi notag)" "Untagged: notag:latest"
  expect_eq "$(d bs run --rm --entrypoint cat child:1 /l1)" "real"
  # Each error in dockerd 20.10's words.
  local df
  while IFS='|' read -r df want; do
    out=$(printf "$df\n" | build_out bs "$ctx" -f -) && fail "built: $df"
    expect_eq "$(tail -1 <<<"$out")" "$want" "$df"
  done <<'CASES'
FROM busybox\nCOPY ../x /x|COPY failed: forbidden path outside the build context: ../x ()
FROM busybox\nADD ../x /x|ADD failed: forbidden path outside the build context: ../x ()
ARG IMG\nFROM $IMG|base name ($IMG) should not be blank
FROM busybox AS a\nFROM busybox AS a|a stage name already used
FROM busybox\nEXPOSE é|Invalid containerPort: é
FROM busybox\nCOPY --chown=nosuch real.txt /f|unable to convert uid/gid chown string to host mapping: can't find uid for user nosuch: no such user: nosuch
CASES
  printf 'FROM busybox\nEXPOSE 80-82/udp\n' | DOCKER_BUILDKIT=0 d bs build -q -t ex:1 -f - "$ctx" >/dev/null 2>&1
  expect_eq "$(d bs inspect -f '{{json .Config.ExposedPorts}}' ex:1)" '{"80/udp":{},"81/udp":{},"82/udp":{}}'
  # --label: a step per label, counted in the total.
  out=$(printf 'FROM busybox\n' | build_out bs "$ctx" -f - --label b=2 --label a=1)
  expect_contains "$out" "Step 2/3 : LABEL a=1"
  expect_contains "$out" "Step 3/3 : LABEL b=2"
  # A client gone during a RUN: the step's container goes, nothing is committed.
  local images; images=$(d bs images -aq | sort)
  printf 'FROM busybox\nRUN sleep 30\n' > "$ctx/Dockerfile"
  tar -cf - -C "$ctx" . | api bs -m 2 -o /dev/null -X POST -H 'Content-Type: application/x-tar' --data-binary @- "http://berth/build" || true
  for _ in $(seq 100); do [ -z "$(d bs ps -aq)" ] && break; sleep 0.1; done
  expect_eq "$(d bs ps -aq)" "" "the cancelled step's container"
  expect_eq "$(d bs images -aq | sort)" "$images" "no image from a cancelled build"
}

scenario_build_cache_in_system_df_and_builder_prune() {
  start_with_busybox bp
  local ctx=$WORK/bp-ctx out
  mkdir -p "$ctx"
  echo one > "$ctx/f"
  printf 'FROM busybox\nCOPY f /f\nRUN cat /f > /g\nENV x=1\n' > "$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 d bp build -q -t pr:1 "$ctx" >/dev/null 2>&1
  echo two > "$ctx/f"
  DOCKER_BUILDKIT=0 d bp build -q -t pr:1 "$ctx" >/dev/null 2>&1
  # Two chains of three steps (the tagged end of the second is an image, not
  # cache): the first one no tagged image needs any more.
  expect_eq "$(d bp system df --format '{{.Type}} {{.TotalCount}} {{.Active}}' | grep Build)" "Build Cache 5 2"
  expect_eq "$(d bp system df --format '{{.Type}} {{.TotalCount}}' | grep Images)" "Images 3"
  out=$(d bp builder prune -f 2>/dev/null)
  expect_eq "$(grep -c '^sha256:' <<<"$out")" "3"
  expect_contains "$out" "Total reclaimed space: 8B"
  expect_eq "$(d bp system df --format '{{.Type}} {{.TotalCount}} {{.Reclaimable}}' | grep Build)" "Build Cache 2 0B"
  # What pr:1 is made of stays, and still serves as its cache.
  expect_eq "$(build_out bp "$ctx" -t pr:1 | grep -c 'Using cache')" "3"
  expect_eq "$(d bp run --rm pr:1 cat /g)" "two"
}

scenario_build_add_fetches_urls_from_this_host_only() {
  start_with_busybox bu
  local ctx=$WORK/bu-ctx www=$WORK/bu-www port out
  mkdir -p "$ctx" "$www"
  echo served > "$www/hello.txt"
  tar -cf "$www/pk.tar" -C "$www" hello.txt
  port=$(free_port)
  python3 -m http.server "$port" --bind 127.0.0.1 --directory "$www" >/dev/null 2>&1 &
  echo $! >> "$PIDFILE"
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/hello.txt" >/dev/null && break; sleep 0.1; done
  # As dockerd 20.10: named after the URL's path, mode 0600, a tar not unpacked.
  printf 'FROM busybox\nADD http://127.0.0.1:%s/hello.txt /got/\nADD http://127.0.0.1:%s/pk.tar /pk.tar\n' "$port" "$port" > "$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 d bu build -q -t url:1 "$ctx" >/dev/null 2>&1 || fail "the build failed"
  expect_eq "$(d bu run --rm url:1 stat -c '%n %a %s' /got/hello.txt /pk.tar)" "/got/hello.txt 600 7
/pk.tar 600 10240"
  expect_eq "$(d bu history --no-trunc --format '{{.CreatedBy}}' url:1 | head -1 | sed -E 's/[0-9a-f]{64}/H/')" "/bin/sh -c #(nop) ADD H in /pk.tar "
  out=$(printf 'FROM busybox\nADD http://127.0.0.1:%s/nosuch /x\n' "$port" | build_out bu "$ctx" -f -) && fail "added a missing URL"
  expect_eq "$(tail -1 <<<"$out")" "failed to GET http://127.0.0.1:$port/nosuch with status 404 Not Found: Not Found"
  # No host beyond this one is reached.
  out=$(printf 'FROM busybox\nADD http://example.com/x /x\n' | build_out bu "$ctx" -f -) && fail "fetched from another host"
  expect_eq "$(tail -1 <<<"$out")" "ADD failed: http://example.com/x: berthd fetches remote sources only from this host (a loopback address); copy the file into the build context instead"
  expect_eq "$(d bu ps -aq)" ""
  expect_eq "$(tar -cf - -C "$ctx" . | api bu -w ' %{http_code}' -X POST -H 'Content-Type: application/x-tar' --data-binary @- 'http://berth/build?platform=foo')" \
    '{"message":"\"foo\": unknown operating system or architecture: invalid argument"} 400'
}
