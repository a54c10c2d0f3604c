//! What a certificate says: whether it is valid now, and a client certificate's subject.

use std::path::Path;

use crate::config::read_certs;

/// A warning when the certificate in `path` (its first, the leaf) is expired or not yet
/// valid: such a certificate still serves, but clients will refuse it.
pub fn validity_warning(path: &Path) -> Option<String> {
    let certs = read_certs(path).ok()?;
    let (_, leaf) = x509_parser::parse_x509_certificate(certs.first()?.as_ref()).ok()?;
    let validity = leaf.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now > validity.not_after {
        Some(format!("the certificate in '{}' expired on {}", path.display(), validity.not_after))
    } else if now < validity.not_before {
        Some(format!(
            "the certificate in '{}' is not valid before {}",
            path.display(),
            validity.not_before
        ))
    } else {
        None
    }
}

/// The subject of a client certificate (DER) as Apache and nginx write it
/// (`SSL_CLIENT_S_DN`), e.g. `CN=client,O=Example`.
pub fn subject(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let mut parts: Vec<String> = Vec::new();
    for rdn in cert.subject().iter() {
        for attr in rdn.iter() {
            let key = x509_parser::objects::oid2abbrev(
                attr.attr_type(),
                x509_parser::objects::oid_registry(),
            )
            .map(str::to_owned)
            .unwrap_or_else(|_| attr.attr_type().to_id_string());
            let value = attr.as_str().map(str::to_owned).unwrap_or_default();
            parts.push(format!("{key}={value}"));
        }
    }
    // RFC 2253 order: the most specific component first.
    parts.reverse();
    Some(parts.join(","))
}
