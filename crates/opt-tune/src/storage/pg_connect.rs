//! How optkit connects to PostgreSQL: the URL's libpq-style settings, a password from the URL,
//! `PGPASSWORD` or a password file, TLS through rustls (`sslmode` disable / prefer / require /
//! verify-ca / verify-full, `sslrootcert`), and explicit timeouts: connecting, waiting for a
//! lock, and idling inside a transaction. The password never appears in a message.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use postgres::config::SslMode;
use postgres::{Client, Config, NoTls};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::mask;
use crate::error::{Result, TuneError};

/// Seconds to wait for the server to answer a connection, unless the URL sets
/// `connect_timeout`.
const CONNECT_TIMEOUT_S: u64 = 10;
/// Milliseconds a statement waits for a lock held by another worker before it fails.
const LOCK_TIMEOUT_MS: u64 = 60_000;
/// Milliseconds a session may sit idle inside a transaction before the server ends it (a
/// worker frozen mid-transaction cannot hold the study forever).
const IDLE_IN_TRANSACTION_MS: u64 = 60_000;

/// What `sslmode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, the certificate not checked (libpq's default).
    Prefer,
    /// TLS required, the certificate not checked.
    Require,
    /// TLS required, the certificate checked against `sslrootcert`.
    VerifyCa,
    /// TLS required, the certificate checked against `sslrootcert` and the host name.
    VerifyFull,
}

/// A parsed storage URL, ready to connect (again: a heartbeat thread opens a second
/// connection with the same settings).
#[derive(Clone)]
pub struct PgSettings {
    config: Config,
    tls: TlsMode,
    root_cert: Option<PathBuf>,
    masked: String,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &self.masked)
            .field("tls", &self.tls)
            .finish()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl PgSettings {
    /// Parses `url` (`postgres://user[:password]@host[:port]/database[?key=value&…]`).
    pub fn parse(url: &str) -> Result<Self> {
        let masked = mask(url);
        let bad = |problem: String| TuneError::storage(&masked, problem);
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut passed = Vec::new();
        let (mut tls, mut root_cert, mut passfile) = (TlsMode::Prefer, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => {
                    tls = match v {
                        "disable" => TlsMode::Disable,
                        "allow" | "prefer" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" => TlsMode::VerifyCa,
                        "verify-full" => TlsMode::VerifyFull,
                        other => {
                            return Err(bad(format!(
                                "sslmode={other}: use disable, prefer, require, verify-ca or \
                                 verify-full"
                            )));
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(percent_decode(v))),
                "passfile" => passfile = Some(PathBuf::from(percent_decode(v))),
                _ => passed.push(pair),
            }
        }
        let rest = if passed.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", passed.join("&"))
        };
        let mut config = Config::from_str(&rest).map_err(|e| {
            bad(format!(
                "not a PostgreSQL URL optkit understands ({e}); write \
                 postgres://user@host:port/database, optionally with ?sslmode=…"
            ))
        })?;
        if config.get_password().is_none() {
            let password = std::env::var("PGPASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
                .or_else(|| password_from_file(&config, passfile.as_deref()));
            if let Some(p) = password {
                config.password(p);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(CONNECT_TIMEOUT_S));
        }
        let options = format!(
            "{} -c lock_timeout={LOCK_TIMEOUT_MS} -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim());
        config.ssl_mode(match tls {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        if matches!(tls, TlsMode::VerifyCa | TlsMode::VerifyFull) && root_cert.is_none() {
            root_cert = home().map(|h| h.join(".postgresql/root.crt"));
        }
        Ok(Self {
            config,
            tls,
            root_cert,
            masked,
        })
    }

    /// The URL with its password masked.
    pub fn masked(&self) -> &str {
        &self.masked
    }

    /// Connects with these settings.
    pub fn connect(&self) -> Result<Client> {
        let fail = |e: postgres::Error| {
            TuneError::storage(
                &self.masked,
                format!(
                    "cannot connect: {e}; check that the server runs and that host, port, user, \
                     password (in the URL, PGPASSWORD or a password file) and database are \
                     right"
                ),
            )
        };
        match self.tls {
            TlsMode::Disable => self.config.connect(NoTls).map_err(fail),
            _ => {
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.rustls_config()?);
                self.config.connect(tls).map_err(fail)
            }
        }
    }

    fn rustls_config(&self) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TuneError::storage(&self.masked, format!("TLS setup: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.tls {
            TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => Arc::new(Unverified(provider)),
            TlsMode::VerifyCa | TlsMode::VerifyFull => {
                let roots = self.roots()?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| TuneError::storage(&self.masked, format!("TLS setup: {e}")))?;
                Arc::new(Verified {
                    webpki,
                    check_name: self.tls == TlsMode::VerifyFull,
                })
            }
        };
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }

    fn roots(&self) -> Result<RootCertStore> {
        let path = self.root_cert.clone().unwrap_or_default();
        let fail = |problem: String| TuneError::storage(&self.masked, problem);
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
            .and_then(|it| it.collect::<std::result::Result<_, _>>())
            .map_err(|e| {
                fail(format!(
                    "sslmode=verify-ca/verify-full needs the server's CA certificate: cannot \
                     read {} ({e}); give ?sslrootcert=<file.pem>",
                    path.display()
                ))
            })?;
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(fail(format!(
                "{} holds no usable certificate; give the server's CA certificate in PEM",
                path.display()
            )));
        }
        Ok(roots)
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// The password of the first line of a libpq password file (`PGPASSFILE`, `passfile=`, else
/// `~/.pgpass`; lines `host:port:database:user:password`, `*` matching anything, `\:` and
/// `\\` escaped) that matches the connection.
fn password_from_file(config: &Config, passfile: Option<&Path>) -> Option<String> {
    let path = passfile
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("PGPASSFILE").map(PathBuf::from))
        .or_else(|| home().map(|h| h.join(".pgpass")))?;
    let text = opt_core::fsutil::read_capped(&path, 1 << 20, "a password file").ok()?;
    let text = String::from_utf8(text).ok()?;
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or_default()
        .to_string();
    let user = config.get_user().unwrap_or_default().to_string();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass(line);
            let [h, p, d, u, pw] = fields.as_slice() else {
                return None;
            };
            let m = |pat: &String, v: &str| pat == "*" || pat == v;
            (m(h, &host) && m(p, &port) && m(d, &db) && m(u, &user)).then(|| pw.clone())
        })
}

/// The five fields of a password-file line.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().expect("one field").push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// `sslmode=require` (and `prefer`): encrypted, the server's certificate not checked, as in
/// libpq; the handshake's signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca` (chain checked, host name not) and `verify-full` (both).
#[derive(Debug)]
struct Verified {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_hide_the_password() {
        let s = PgSettings::parse(
            "postgres://u:s%40cret@db.example:5433/opt?sslmode=verify-full&sslrootcert=/x/ca.pem&application_name=w",
        )
        .unwrap();
        assert_eq!(s.tls, TlsMode::VerifyFull);
        assert_eq!(s.root_cert.as_deref(), Some(Path::new("/x/ca.pem")));
        assert!(!format!("{s:?}").contains("cret"), "{s:?}");
        assert_eq!(
            s.config.get_connect_timeout(),
            Some(&Duration::from_secs(10))
        );
        let options = s.config.get_options().unwrap();
        assert!(
            options.contains("lock_timeout=60000")
                && options.contains("idle_in_transaction_session_timeout=60000"),
            "{options}"
        );
        let e = PgSettings::parse("postgres://u:secret@h/db?sslmode=maybe")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslmode=maybe") && !e.contains("secret"), "{e}");
    }

    #[test]
    fn password_files_match_like_libpq() {
        let dir = std::env::temp_dir().join(format!("optkit-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:u:wrong\ndb.example:*:opt:u:pa\\:ss\n*:*:*:*:fallback\n",
        )
        .unwrap();
        let config = Config::from_str("postgres://u@db.example:5433/opt").unwrap();
        assert_eq!(
            password_from_file(&config, Some(&file)).as_deref(),
            Some("pa:ss")
        );
        let config = Config::from_str("postgres://v@elsewhere/x").unwrap();
        assert_eq!(
            password_from_file(&config, Some(&file)).as_deref(),
            Some("fallback")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Against the server of `.ci/run` (Debian's cluster, TLS on with its snakeoil
    /// certificate): `require` encrypts, `disable` does not, a password file is read when the
    /// URL has no password, and `verify-full` against a root that did not sign the server's
    /// certificate is a clear error.
    #[cfg(feature = "postgres-tests")]
    #[test]
    fn tls_modes_and_password_files_against_the_server() {
        let url = std::env::var("OPTKIT_TEST_POSTGRES").expect("set OPTKIT_TEST_POSTGRES");
        let encrypted = |url: &str| -> bool {
            let mut c = PgSettings::parse(url).unwrap().connect().unwrap();
            c.query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0)
        };
        assert!(encrypted(&format!("{url}?sslmode=require")));
        assert!(!encrypted(&format!("{url}?sslmode=disable")));

        let config = Config::from_str(&url).unwrap();
        let host = match &config.get_hosts()[0] {
            postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            postgres::config::Host::Unix(p) => p.display().to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let (user, db) = (config.get_user().unwrap(), config.get_dbname().unwrap());
        let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();
        let dir = std::env::temp_dir().join(format!("optkit-pgtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(&file, format!("{host}:{port}:{db}:{user}:{password}\n")).unwrap();
        let bare = format!("postgres://{user}@{host}:{port}/{db}");
        assert!(encrypted(&format!("{bare}?passfile={}", file.display())));

        let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
        let e = PgSettings::parse(&format!("{url}?sslmode=verify-full&sslrootcert={snakeoil}"))
            .unwrap()
            .connect()
            .err()
            .expect("the server's certificate is not signed by this root")
            .to_string();
        assert!(
            e.contains("cannot connect") && !e.contains(&format!(":{password}@")),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
