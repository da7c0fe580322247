//! When a certificate stops being valid, read from the certificate itself: what the controller
//! looks at in the certificate an agent presented, to warn before it expires.

/// `not_after` of a certificate (DER), as seconds since the Unix epoch; `None` when it cannot
/// be read.
pub fn not_after_unix(cert_der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Whole days from `now_unix` until `not_after_unix` (negative once expired).
pub fn days_left(not_after_unix: i64, now_unix: i64) -> i64 {
    (not_after_unix - now_unix).div_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_read_and_counted_in_whole_days() {
        let mut params = rcgen::CertificateParams::new(vec!["x.test".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2030, 1, 2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let at = not_after_unix(cert.der()).unwrap();
        assert_eq!(at, 1_893_542_400);
        assert_eq!(not_after_unix(b"junk"), None);
        let day = 86_400;
        let table = [
            (at, 0),
            (at - day, 1),
            (at - day - 1, 1),
            (at + 1, -1),
            (at - 30 * day, 30),
        ];
        for (now, want) in table {
            assert_eq!(days_left(at, now), want, "{now}");
        }
    }
}
