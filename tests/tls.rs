//! --tlsverify: a tcp listener that serves only clients whose certificate the CA signed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::TestDaemon;

fn certs(dir: &Path) -> PathBuf {
    let script = common::project_dir().join("docker-compat/lib/gen-certs.sh");
    let out = dir.join("certs");
    let status = Command::new("bash")
        .arg(script)
        .arg(&out)
        .status()
        .expect("run gen-certs.sh");
    assert!(
        status.success(),
        "gen-certs.sh failed (is openssl installed?)"
    );
    out
}

fn client_config(certs: &Path, identity: Option<&str>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(certs.join("ca.pem")).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add ca");
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    match identity {
        None => b.with_no_client_auth(),
        Some(name) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(certs.join(format!("{name}-cert.pem")))
                    .expect("cert")
                    .map(|c| c.expect("cert"))
                    .collect();
            let key =
                PrivateKeyDer::from_pem_file(certs.join(format!("{name}-key.pem"))).expect("key");
            b.with_client_auth_cert(chain, key).expect("client auth")
        }
    }
}

/// GET /_ping over TLS; Ok(response text) or Err(what failed).
async fn tls_ping(port: u16, config: rustls::ClientConfig) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out)
        .await
        .map_err(|e| format!("read: {e}"))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn tlsverify_serves_signed_clients_only() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let certs = certs(scratch.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let d = TestDaemon::start_with(&[
        "-H",
        &format!("tcp://127.0.0.1:{port}"),
        "--tlsverify",
        "--tlscacert",
        &certs.join("ca.pem").display().to_string(),
        "--tlscert",
        &certs.join("server-cert.pem").display().to_string(),
        "--tlskey",
        &certs.join("server-key.pem").display().to_string(),
    ]);

    let good = tls_ping(port, client_config(&certs, Some("client")))
        .await
        .expect("signed client is served");
    assert!(good.starts_with("HTTP/1.1 200 OK"), "{good}");
    assert!(good.ends_with("OK"), "{good}");

    let anonymous = tls_ping(port, client_config(&certs, None)).await;
    assert!(
        !anonymous.as_deref().unwrap_or("").contains("200 OK"),
        "no certificate must be refused: {anonymous:?}"
    );

    let intruder = tls_ping(port, client_config(&certs, Some("intruder"))).await;
    assert!(
        !intruder.as_deref().unwrap_or("").contains("200 OK"),
        "a foreign CA must be refused: {intruder:?}"
    );

    // Plain HTTP on the TLS port gets nothing useful either.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    std::io::Write::write_all(&mut plain, b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    drop(d);
}
