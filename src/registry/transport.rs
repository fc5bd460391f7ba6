//! What went wrong on the way to a registry, in Go's words as dockerd prints
//! them (`Get "https://host/v2/": dial tcp host:port: connect: connection
//! refused`, `x509: certificate signed by unknown authority`): reqwest's own
//! text ("error sending request for url") hides the cause in its sources.

use std::error::Error as StdError;

/// dockerd's words for a transport failure of a request to `url`, if `e`
/// is one (None: not a transport failure).
pub fn words(e: &reqwest::Error) -> Option<String> {
    let url = e.url()?;
    // dockerd's first request is the version check at /v2/.
    let origin = format!(
        "{}://{}{}/v2/",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    );
    let host_port = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(443)
    );
    let cause = cause(e, &host_port)?;
    Some(format!("Get {origin:?}: {cause}"))
}

/// An error and its sources, `a: b: c` (reqwest's own text leaves them out).
pub fn error_chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        text.push_str(": ");
        text.push_str(&s.to_string());
        next = s.source();
    }
    text
}

fn cause(e: &reqwest::Error, host_port: &str) -> Option<String> {
    let chain = chain(e);
    if let Some(tls) = chain.iter().find_map(|s| s.downcast_ref::<rustls::Error>()) {
        return Some(tls_words(tls));
    }
    if let Some(io) = chain
        .iter()
        .find_map(|s| s.downcast_ref::<std::io::Error>())
    {
        use std::io::ErrorKind::*;
        let text = io.to_string();
        let what = match io.kind() {
            ConnectionRefused => "connect: connection refused".to_string(),
            TimedOut => "i/o timeout".to_string(),
            HostUnreachable => "connect: no route to host".to_string(),
            NetworkUnreachable => "connect: network is unreachable".to_string(),
            ConnectionReset => "read: connection reset by peer".to_string(),
            _ if text.contains("failed to lookup address") => {
                let host = host_port.rsplit_once(':').map(|h| h.0).unwrap_or(host_port);
                return Some(format!("dial tcp: lookup {host}: no such host"));
            }
            _ => text,
        };
        return Some(format!("dial tcp {host_port}: {what}"));
    }
    if e.is_timeout() {
        return Some(
            "net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)"
                .into(),
        );
    }
    None
}

/// Every error below `e`: its sources, and what an io::Error wraps (whose
/// `source()` skips the wrapped error itself).
fn chain<'a>(e: &'a reqwest::Error) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next: Option<&'a (dyn StdError + 'static)> = e.source();
    while let Some(s) = next {
        out.push(s);
        next = match s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => s.source(),
        };
    }
    out
}

fn tls_words(e: &rustls::Error) -> String {
    use rustls::{CertificateError, Error::*};
    match e {
        InvalidCertificate(CertificateError::UnknownIssuer) => {
            "x509: certificate signed by unknown authority".into()
        }
        InvalidCertificate(CertificateError::Expired) => {
            "x509: certificate has expired or is not yet valid".into()
        }
        InvalidCertificate(CertificateError::NotValidForName)
        | InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "x509: certificate is not valid for this name".into()
        }
        // The server's alert, as Go's client words it (a registry that wants a
        // client certificate and got none: `remote error: tls: bad certificate`).
        AlertReceived(alert) => format!("remote error: tls: {}", go_alert(*alert)),
        other => format!("tls: {other}"),
    }
}

/// Go's name of a TLS alert (crypto/tls alert.go).
fn go_alert(a: rustls::AlertDescription) -> String {
    use rustls::AlertDescription::*;
    match a {
        CloseNotify => "close notify",
        UnexpectedMessage => "unexpected message",
        BadRecordMac => "bad record MAC",
        RecordOverflow => "record overflow",
        HandshakeFailure => "handshake failure",
        BadCertificate => "bad certificate",
        UnsupportedCertificate => "unsupported certificate",
        CertificateRevoked => "revoked certificate",
        CertificateExpired => "expired certificate",
        CertificateUnknown => "unknown certificate",
        IllegalParameter => "illegal parameter",
        UnknownCA => "unknown certificate authority",
        AccessDenied => "access denied",
        DecodeError => "error decoding message",
        DecryptError => "error decrypting message",
        ProtocolVersion => "protocol version not supported",
        InsufficientSecurity => "insufficient security level",
        InternalError => "internal error",
        InappropriateFallback => "inappropriate fallback",
        UserCanceled => "user canceled",
        NoRenegotiation => "no renegotiation",
        MissingExtension => "missing extension",
        UnsupportedExtension => "unsupported extension",
        UnrecognisedName => "unrecognized name",
        CertificateRequired => "certificate required",
        NoApplicationProtocol => "no application protocol",
        other => return format!("{other:?}"),
    }
    .to_string()
}
