//! What a negative check expects: the refusal by which a server (or the verifying client, for a
//! certificate that does not cover the name asked for) says no. A negative check passes only
//! when that refusal is in the attempt's error chain: a SQLSTATE, a Redis error code, an HTTP
//! status, a TLS alert. Any other error, and above all an error while preparing the attempt
//! (reading a key, building a TLS config or a client), fails the check with that error as
//! evidence, so no check can pass because nothing was tried.

use std::fmt;

use rustls::AlertDescription;

/// The refusal a negative check expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// PostgreSQL refuses with one of these SQLSTATEs (`28000` no or a rejecting pg_hba.conf
    /// line, `28P01` a wrong password, `42501` insufficient privilege).
    Sqlstate(&'static [&'static str]),
    /// PostgreSQL asks for a password (SCRAM) where none was given: the client cannot go on
    /// (tokio-postgres reports `password missing` on the server's authentication request only).
    PasswordDemanded,
    /// Redis answers with one of these error codes (`NOPERM`, `WRONGPASS`, `NOAUTH`).
    Redis(&'static [&'static str]),
    /// Redis refuses the command outright with an `ERR` starting with this text (`DEBUG command
    /// not allowed`, from `enable-debug-command no`).
    RedisErr(&'static str),
    /// The HTTP server answers with one of these statuses.
    Http(&'static [u16]),
    /// A gRPC server answers with one of these status codes (16 UNAUTHENTICATED, 7
    /// PERMISSION_DENIED).
    Grpc(&'static [u32]),
    /// The server ends the TLS session with one of these alerts (`unknown_ca` for a certificate
    /// from another CA, `certificate_required` for none).
    TlsAlert(&'static [AlertDescription]),
    /// The client refuses the server's certificate: it does not cover the name asked for.
    NameNotCovered,
    /// A plaintext request gets no plaintext answer: the server closes the connection or
    /// answers with TLS bytes.
    NoPlaintextAnswer,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Sqlstate(codes) => write!(f, "SQLSTATE {}", codes.join(" or ")),
            Refusal::PasswordDemanded => f.write_str("a password demanded by the server"),
            Refusal::Redis(codes) => write!(f, "Redis {}", codes.join(" or ")),
            Refusal::RedisErr(text) => write!(f, "Redis ERR {text}"),
            Refusal::Http(statuses) => {
                let statuses: Vec<String> = statuses.iter().map(u16::to_string).collect();
                write!(f, "HTTP {}", statuses.join(" or "))
            }
            Refusal::Grpc(codes) => {
                let codes: Vec<String> = codes.iter().map(u32::to_string).collect();
                write!(f, "gRPC status {}", codes.join(" or "))
            }
            Refusal::TlsAlert(alerts) => {
                let alerts: Vec<String> = alerts.iter().map(|a| format!("{a:?}")).collect();
                write!(f, "TLS alert {}", alerts.join(" or "))
            }
            Refusal::NameNotCovered => f.write_str("a certificate not valid for the name"),
            Refusal::NoPlaintextAnswer => f.write_str("no plaintext answer"),
        }
    }
}

/// An error while preparing an attempt: never a refusal.
#[derive(Debug, thiserror::Error)]
#[error("preparing the attempt: {0}")]
pub struct Preparation(pub String);

/// Marks the errors of a preparation step (reading a secret or a key, building a TLS config or
/// a client), so a failure there fails the check instead of counting as a refusal.
pub fn prepare<T>(result: anyhow::Result<T>) -> anyhow::Result<T> {
    result.map_err(|err| Preparation(format!("{err:#}")).into())
}

/// An HTTP answer that is not a success.
#[derive(Debug, thiserror::Error)]
#[error("answered {0}")]
pub struct HttpStatus(pub u16);

/// A gRPC answer whose status is not OK (0).
#[derive(Debug, thiserror::Error)]
#[error("gRPC status {0}")]
pub struct GrpcStatus(pub u32);

/// A plaintext request that got no plaintext answer (what the server did instead).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NoPlaintextAnswer(pub String);

/// Whether the error comes from preparing the attempt.
pub fn is_preparation(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<Preparation>())
}

impl Refusal {
    /// Whether the error chain carries this refusal.
    pub fn is_in(&self, err: &anyhow::Error) -> bool {
        !is_preparation(err) && err.chain().any(|cause| self.matches(cause))
    }

    /// Whether one error (or, for an I/O error, the error it wraps) is this refusal.
    fn matches(&self, cause: &(dyn std::error::Error + 'static)) -> bool {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            let mut next: Option<&(dyn std::error::Error + 'static)> = Some(inner);
            while let Some(error) = next {
                if self.matches(error) {
                    return true;
                }
                next = error.source();
            }
        }
        match self {
            Refusal::Sqlstate(codes) => {
                let replication = cause.downcast_ref::<crate::probe::replication::ServerError>();
                cause
                    .downcast_ref::<tokio_postgres::Error>()
                    .and_then(tokio_postgres::Error::code)
                    .map(|state| state.code())
                    .or(replication.map(|e| e.code.as_str()))
                    .is_some_and(|code| codes.contains(&code))
            }
            // tokio-postgres raises its configuration error "password missing" only when the
            // server's authentication request asks for a password (connect_raw.rs).
            Refusal::PasswordDemanded => cause.downcast_ref::<tokio_postgres::Error>().is_some_and(|e| {
                e.code().is_none()
                    && e.to_string() == "invalid configuration"
                    && std::error::Error::source(e).is_some_and(|s| s.to_string() == "password missing")
            }),
            Refusal::Redis(codes) => cause
                .downcast_ref::<redis::RedisError>()
                .and_then(redis::RedisError::code)
                .is_some_and(|code| codes.contains(&code)),
            Refusal::RedisErr(text) => cause.downcast_ref::<redis::RedisError>().is_some_and(|e| {
                e.kind() == redis::ErrorKind::ResponseError && e.detail().is_some_and(|d| d.starts_with(text))
            }),
            Refusal::Http(statuses) => cause.downcast_ref::<HttpStatus>().is_some_and(|s| statuses.contains(&s.0)),
            Refusal::Grpc(codes) => cause.downcast_ref::<GrpcStatus>().is_some_and(|s| codes.contains(&s.0)),
            Refusal::TlsAlert(alerts) => matches!(
                cause.downcast_ref::<rustls::Error>(),
                Some(rustls::Error::AlertReceived(alert)) if alerts.contains(alert)
            ),
            Refusal::NameNotCovered => matches!(
                cause.downcast_ref::<rustls::Error>(),
                Some(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. }
                ))
            ),
            Refusal::NoPlaintextAnswer => cause.is::<NoPlaintextAnswer>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One refusal of every kind.
    const KINDS: [Refusal; 9] = [
        Refusal::Sqlstate(&["28000", "28P01", "42501"]),
        Refusal::PasswordDemanded,
        Refusal::Redis(&["NOPERM", "WRONGPASS", "NOAUTH"]),
        Refusal::RedisErr("DEBUG command not allowed"),
        Refusal::Http(&[401, 403]),
        Refusal::Grpc(&[16, 7]),
        Refusal::TlsAlert(&[AlertDescription::UnknownCA, AlertDescription::CertificateRequired]),
        Refusal::NameNotCovered,
        Refusal::NoPlaintextAnswer,
    ];

    /// Each kind's own refusal, where one can be made without a server.
    fn genuine(kind: Refusal) -> Option<anyhow::Error> {
        Some(match kind {
            Refusal::Http(_) => HttpStatus(401).into(),
            Refusal::Grpc(_) => GrpcStatus(16).into(),
            Refusal::TlsAlert(_) => {
                std::io::Error::other(rustls::Error::AlertReceived(AlertDescription::UnknownCA)).into()
            }
            Refusal::NameNotCovered => {
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName).into()
            }
            Refusal::NoPlaintextAnswer => NoPlaintextAnswer("the server closed the connection".into()).into(),
            // tokio-postgres and redis errors come from a server only: the integration tests
            // (tests/it/verify.rs) see those refusals.
            _ => return None,
        })
    }

    #[test]
    fn a_preparation_error_is_never_a_refusal() {
        for kind in KINDS {
            let missing_key = prepare::<()>(Err(anyhow::anyhow!("reading certs/clients/app/client.key: not found")));
            assert!(!kind.is_in(&missing_key.unwrap_err()), "{kind}");
            // Even when what failed to prepare looks like the refusal itself.
            if let Some(refusal) = genuine(kind) {
                let wrapped = prepare::<()>(Err(refusal)).unwrap_err();
                assert!(is_preparation(&wrapped));
                assert!(!kind.is_in(&wrapped), "{kind} counted a preparation error");
            }
        }
    }

    #[test]
    fn an_unrelated_error_is_not_a_refusal() {
        for kind in KINDS {
            let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
            assert!(!kind.is_in(&anyhow::Error::from(refused)), "{kind}");
            assert!(!kind.is_in(&anyhow::anyhow!("timed out")), "{kind}");
        }
    }

    #[test]
    fn each_kind_sees_its_own_refusal_and_no_other() {
        for kind in KINDS {
            for other in KINDS {
                let Some(error) = genuine(other) else { continue };
                let error = error.context("connecting");
                assert_eq!(kind.is_in(&error), kind == other, "{kind} on {other}'s refusal");
            }
        }
    }

    #[test]
    fn the_expected_alert_only() {
        let unknown_ca =
            anyhow::Error::from(std::io::Error::other(rustls::Error::AlertReceived(AlertDescription::UnknownCA)));
        assert!(Refusal::TlsAlert(&[AlertDescription::UnknownCA]).is_in(&unknown_ca));
        assert!(!Refusal::TlsAlert(&[AlertDescription::CertificateRequired]).is_in(&unknown_ca));
        assert!(!Refusal::Http(&[403]).is_in(&HttpStatus(401).into()));
    }
}
