//! Configuration: defaults, then a TOML file (`--config`), then environment variables and
//! command-line options, each winning over the one before. The environment variable names are a
//! public interface (see DESIGN.md) and stay stable.

use std::path::PathBuf;
use std::time::Duration;

use oxmed_auth::keys::KeyAlgorithm;

use serde::Deserialize;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file; its keys are the option names below with `_` for `-`.
    #[arg(long, env = "OXMED_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on, `host:port` [default: 127.0.0.1:8103].
    #[arg(long, env = "OXMED_LISTEN")]
    pub listen: Option<String>,
    /// Public base URL of the server, used in links and as the token issuer
    /// [default: http://<listen>/].
    #[arg(long, env = "OXMED_BASE_URL")]
    pub base_url: Option<String>,
    /// Directory for local state, including the SQLite database [default: ./data].
    #[arg(long, env = "OXMED_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database: `sqlite://PATH` or `postgres://user:pass@host/db`
    /// [default: sqlite://<data-dir>/oxmed.db].
    #[arg(long, env = "OXMED_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Largest accepted request body in bytes [default: 16777216 (16 MiB)].
    #[arg(long, env = "OXMED_MAX_BODY_SIZE")]
    pub max_body_size: Option<usize>,
    /// Largest `_count` a search or history page may ask for [default: 1000].
    #[arg(long, env = "OXMED_MAX_COUNT")]
    pub max_count: Option<usize>,
    /// Log filter, in `tracing` EnvFilter syntax [default: info].
    #[arg(long, env = "OXMED_LOG")]
    pub log: Option<String>,
    /// Email of the super admin created on first start [default: admin@example.com].
    #[arg(long, env = "OXMED_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Password of that super admin; without it a random one is generated and printed once.
    #[arg(long, env = "OXMED_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// bcrypt cost of new password hashes [default: 10].
    #[arg(long, env = "OXMED_BCRYPT_COST")]
    pub bcrypt_cost: Option<u32>,
    /// How many `X-Forwarded-For` hops to trust for the client address [default: 0].
    #[arg(long, env = "OXMED_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<usize>,
    /// Requests per minute per client address to `/auth/*` and `/oauth2/*`; 0 turns the
    /// limit off [default: 160].
    #[arg(long, env = "OXMED_AUTH_RATE_LIMIT")]
    pub auth_rate_limit: Option<u32>,
    /// Requests per minute per client address to everything; 0 turns it off [default: 60000].
    #[arg(long, env = "OXMED_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Algorithm of new signing keys, ES256 or RS256 [default: ES256].
    #[arg(long, env = "OXMED_SIGNING_ALG")]
    pub signing_alg: Option<String>,
    /// How long a signing key signs before a new one takes over (`90d`, `12w`); 0: never
    /// [default: 0].
    #[arg(long, env = "OXMED_KEY_ROTATION")]
    pub key_rotation: Option<String>,
    /// How long a replaced signing key keeps verifying; at least the longest token lifetime
    /// [default: 15d].
    #[arg(long, env = "OXMED_KEY_OVERLAP")]
    pub key_overlap: Option<String>,
    /// The SMTP server of the emails: `smtp://user:pass@host:587?tls=required` (STARTTLS),
    /// `smtps://user:pass@host:465` (TLS), `smtp://host:25`; unset: emails go to the log.
    #[arg(long, env = "OXMED_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// A PEM file of certificates to trust for the SMTP server's TLS, besides the public roots.
    #[arg(long, env = "OXMED_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
    /// The sender of the emails [default: oxmed <noreply@localhost>].
    #[arg(long, env = "OXMED_EMAIL_FROM")]
    pub email_from: Option<String>,
    /// Where the links in emails point [default: the base URL, whose pages handle them].
    #[arg(long, env = "OXMED_APP_BASE_URL")]
    pub app_base_url: Option<String>,
    /// How long a password-reset link works [default: 24h].
    #[arg(long, env = "OXMED_RESET_LINK_TTL")]
    pub reset_link_ttl: Option<String>,
    /// How long an invite's set-password link works [default: 7d].
    #[arg(long, env = "OXMED_INVITE_LINK_TTL")]
    pub invite_link_ttl: Option<String>,
    /// Whether anyone may register through `/auth/newuser` [default: true].
    #[arg(long, env = "OXMED_REGISTER_ENABLED")]
    pub register_enabled: Option<bool>,
    /// The server's reCAPTCHA site key (spec §4.5).
    #[arg(long, env = "OXMED_RECAPTCHA_SITE_KEY")]
    pub recaptcha_site_key: Option<String>,
    /// The server's reCAPTCHA secret key; unset: registration and reset need no token.
    #[arg(long, env = "OXMED_RECAPTCHA_SECRET_KEY", hide_env_values = true)]
    pub recaptcha_secret_key: Option<String>,
    /// The siteverify endpoint [default: Google's].
    #[arg(long, env = "OXMED_RECAPTCHA_VERIFY_URL")]
    pub recaptcha_verify_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    base_url: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    max_body_size: Option<usize>,
    max_count: Option<usize>,
    log: Option<String>,
    admin_email: Option<String>,
    admin_password: Option<String>,
    bcrypt_cost: Option<u32>,
    trusted_proxies: Option<usize>,
    auth_rate_limit: Option<u32>,
    rate_limit: Option<u32>,
    signing_alg: Option<String>,
    key_rotation: Option<String>,
    key_overlap: Option<String>,
    smtp_url: Option<String>,
    smtp_ca_file: Option<PathBuf>,
    email_from: Option<String>,
    app_base_url: Option<String>,
    reset_link_ttl: Option<String>,
    invite_link_ttl: Option<String>,
    register_enabled: Option<bool>,
    recaptcha_site_key: Option<String>,
    recaptcha_secret_key: Option<String>,
    recaptcha_verify_url: Option<String>,
}

/// The default refresh-token lifetime (two weeks) and a day.
const DEFAULT_KEY_OVERLAP: Duration = Duration::from_secs(15 * 24 * 3600);

const DEFAULT_EMAIL_FROM: &str = "oxmed <noreply@localhost>";
const DEFAULT_EMAIL_RETRY_DELAY: Duration = Duration::from_secs(5);

/// The super admin of [`Config::for_tests`].
pub const TEST_ADMIN_EMAIL: &str = "admin@example.com";
pub const TEST_ADMIN_PASSWORD: &str = "test-admin-password";

#[derive(Clone)]
pub struct Config {
    pub listen: String,
    pub base_url: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub max_body_size: usize,
    pub max_count: usize,
    pub log: String,
    pub admin_email: String,
    /// Never printed by `Debug`.
    pub admin_password: Option<String>,
    pub bcrypt_cost: u32,
    pub trusted_proxies: usize,
    pub auth_rate_limit: u32,
    pub rate_limit: u32,
    pub signing_alg: KeyAlgorithm,
    pub key_rotation: Option<Duration>,
    pub key_overlap: Duration,
    /// Never printed by `Debug` (it may hold a password).
    pub smtp_url: Option<String>,
    /// The PEM read from `OXMED_SMTP_CA_FILE`.
    pub smtp_ca_pem: Option<Vec<u8>>,
    pub email_from: String,
    /// Ends in `/`.
    pub app_base_url: String,
    pub reset_link_ttl: Duration,
    pub invite_link_ttl: Duration,
    /// The wait before an email's second attempt (each later one waits four times longer).
    pub email_retry_delay: Duration,
    /// The longest one attempt to send an email may take.
    pub email_attempt_timeout: Duration,
    pub register_enabled: bool,
    pub recaptcha_site_key: Option<String>,
    /// Never printed by `Debug`.
    pub recaptcha_secret_key: Option<String>,
    pub recaptcha_verify_url: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("base_url", &self.base_url)
            .field("data_dir", &self.data_dir)
            .field("max_body_size", &self.max_body_size)
            .field("max_count", &self.max_count)
            .field("admin_email", &self.admin_email)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid configuration file {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
}

/// A duration such as `90d`; `0` for none.
fn key_duration(name: &'static str, text: Option<String>) -> Result<Option<Duration>, ConfigError> {
    match text.as_deref().map(str::trim) {
        None | Some("0") => Ok(None),
        Some(t) => oxmed_auth::duration::parse(t)
            .map(Some)
            .map_err(|_| ConfigError::Invalid(name, format!("{t:?} is not a duration like 90d"))),
    }
}

impl Config {
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Read(path.clone(), e))?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse(path.clone(), e))?
            }
            None => FileConfig::default(),
        };
        let listen = args
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8103".into());
        let base_url = args
            .base_url
            .clone()
            .or(file.base_url)
            .unwrap_or_else(|| format!("http://{listen}/"));
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("oxmed.db").display()));
        let signing_alg = match args.signing_alg.clone().or(file.signing_alg) {
            None => KeyAlgorithm::Es256,
            Some(a) => KeyAlgorithm::parse(&a.to_ascii_uppercase()).ok_or_else(|| {
                ConfigError::Invalid("OXMED_SIGNING_ALG", format!("{a:?} is not ES256 or RS256"))
            })?,
        };
        let key_rotation = key_duration(
            "OXMED_KEY_ROTATION",
            args.key_rotation.clone().or(file.key_rotation),
        )?;
        let key_overlap = key_duration(
            "OXMED_KEY_OVERLAP",
            args.key_overlap.clone().or(file.key_overlap),
        )?
        .unwrap_or(DEFAULT_KEY_OVERLAP);
        let link_ttl = |name: &'static str, text: Option<String>, default: Duration| {
            key_duration(name, text).map(|d| d.unwrap_or(default))
        };
        let reset_link_ttl = link_ttl(
            "OXMED_RESET_LINK_TTL",
            args.reset_link_ttl.clone().or(file.reset_link_ttl),
            Duration::from_secs(24 * 3600),
        )?;
        let invite_link_ttl = link_ttl(
            "OXMED_INVITE_LINK_TTL",
            args.invite_link_ttl.clone().or(file.invite_link_ttl),
            Duration::from_secs(7 * 24 * 3600),
        )?;
        let base_url = normalize_base_url(&base_url);
        Ok(Config {
            smtp_url: args.smtp_url.clone().or(file.smtp_url),
            smtp_ca_pem: match args.smtp_ca_file.clone().or(file.smtp_ca_file) {
                Some(path) => {
                    Some(std::fs::read(&path).map_err(|e| ConfigError::Read(path.clone(), e))?)
                }
                None => None,
            },
            email_from: args
                .email_from
                .clone()
                .or(file.email_from)
                .unwrap_or_else(|| DEFAULT_EMAIL_FROM.into()),
            app_base_url: args
                .app_base_url
                .clone()
                .or(file.app_base_url)
                .map(|u| normalize_base_url(&u))
                .unwrap_or_else(|| base_url.clone()),
            reset_link_ttl,
            invite_link_ttl,
            email_retry_delay: DEFAULT_EMAIL_RETRY_DELAY,
            email_attempt_timeout: Duration::from_secs(10),
            register_enabled: args
                .register_enabled
                .or(file.register_enabled)
                .unwrap_or(true),
            recaptcha_site_key: args.recaptcha_site_key.clone().or(file.recaptcha_site_key),
            recaptcha_secret_key: args
                .recaptcha_secret_key
                .clone()
                .or(file.recaptcha_secret_key),
            recaptcha_verify_url: args
                .recaptcha_verify_url
                .clone()
                .or(file.recaptcha_verify_url)
                .unwrap_or_else(|| oxmed_auth::recaptcha::GOOGLE_SITEVERIFY.into()),
            signing_alg,
            key_rotation,
            key_overlap,
            base_url,
            listen,
            data_dir,
            database_url,
            max_body_size: args
                .max_body_size
                .or(file.max_body_size)
                .unwrap_or(16 * 1024 * 1024),
            max_count: args.max_count.or(file.max_count).unwrap_or(1000),
            log: args
                .log
                .clone()
                .or(file.log)
                .unwrap_or_else(|| "info".into()),
            admin_email: args
                .admin_email
                .clone()
                .or(file.admin_email)
                .unwrap_or_else(|| "admin@example.com".into()),
            admin_password: args.admin_password.clone().or(file.admin_password),
            bcrypt_cost: args.bcrypt_cost.or(file.bcrypt_cost).unwrap_or(10),
            trusted_proxies: args.trusted_proxies.or(file.trusted_proxies).unwrap_or(0),
            auth_rate_limit: args.auth_rate_limit.or(file.auth_rate_limit).unwrap_or(160),
            rate_limit: args.rate_limit.or(file.rate_limit).unwrap_or(60_000),
        })
    }

    /// Defaults for a server on `listen` with the given database: what tests and benchmarks use.
    pub fn for_tests(listen: &str, database_url: &str) -> Config {
        Config {
            listen: listen.into(),
            base_url: format!("http://{listen}/"),
            data_dir: PathBuf::from("./data"),
            database_url: database_url.into(),
            max_body_size: 16 * 1024 * 1024,
            max_count: 1000,
            log: "warn".into(),
            admin_email: TEST_ADMIN_EMAIL.into(),
            admin_password: Some(TEST_ADMIN_PASSWORD.into()),
            // The lowest cost bcrypt allows: tests sign in often and measure nothing of it.
            bcrypt_cost: 4,
            trusted_proxies: 0,
            auth_rate_limit: 160,
            rate_limit: 60_000,
            signing_alg: KeyAlgorithm::Es256,
            key_rotation: None,
            key_overlap: DEFAULT_KEY_OVERLAP,
            smtp_url: None,
            smtp_ca_pem: None,
            email_from: DEFAULT_EMAIL_FROM.into(),
            app_base_url: format!("http://{listen}/"),
            reset_link_ttl: Duration::from_secs(24 * 3600),
            invite_link_ttl: Duration::from_secs(7 * 24 * 3600),
            email_retry_delay: Duration::from_millis(200),
            email_attempt_timeout: Duration::from_secs(3),
            register_enabled: true,
            recaptcha_site_key: None,
            recaptcha_secret_key: None,
            recaptcha_verify_url: oxmed_auth::recaptcha::GOOGLE_SITEVERIFY.into(),
        }
    }

    /// The FHIR base: `<base_url>fhir/R4`.
    pub fn fhir_base(&self) -> String {
        format!("{}fhir/R4", self.base_url)
    }
}

fn normalize_base_url(s: &str) -> String {
    if s.ends_with('/') {
        s.to_owned()
    } else {
        format!("{s}/")
    }
}
