//! Settings: defaults, then `SHAREFILE_SIM__*` environment variables, validated at start-up with
//! the failing variable named. The OAuth client and the user's credentials have no defaults: the
//! start-up scripts (or the test) generate them, so none is stored in the repository.

use std::{fmt, net::SocketAddr, time::Duration};

use secrecy::SecretString;

use simulator_kit::settings::{ConfigError, Env, constraint};

const PREFIX: &str = "SHAREFILE_SIM__";

#[derive(Clone)]
pub struct Config {
    /// Where the HTTP server listens; port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// Prefix of the URLs the simulator hands out (`ChunkUri`, `url`, `odata.metadata`), e.g.
    /// `http://sharefile-simulator:8092`. Unset: `http://<Host header of the request>`.
    pub public_url: Option<String>,
    /// OAuth client credentials (form fields on `/oauth/token`).
    pub client_id: String,
    pub client_secret: SecretString,
    /// The one ShareFile user (the `password` grant).
    pub username: String,
    pub password: SecretString,
    /// Echoed by `/oauth/token` (the client builds `https://{subdomain}.{apicp}/sf/v3/`).
    pub subdomain: String,
    pub apicp: String,
    pub appcp: String,
    /// Access token lifetime (ShareFile: 8 h).
    pub access_token_ttl: Duration,
    /// A refresh hands out a new refresh token and kills the old one (unverified for ShareFile:
    /// off by default, the same refresh token is returned).
    pub rotate_refresh_tokens: bool,
    /// Folders created at start (and after `/control/reset`), e.g. `/Clients`.
    pub root_folders: Vec<String>,
    /// Largest file accepted (`FileTooLarge`); `None`: no limit.
    pub max_file_size_bytes: Option<u64>,
    /// Total bytes of all stored files (`QuotaExceeded`); `None`: no limit.
    pub quota_bytes: Option<u64>,
    /// Largest request body the server reads (uploads included).
    pub max_body_bytes: usize,
    /// Ledger entries kept (oldest dropped first).
    pub ledger_capacity: usize,
    /// Seeds the RNG of fault probabilities.
    pub seed: u64,
}

impl Config {
    pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8092";

    /// Defaults for everything but the credentials, which the caller supplies.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self {
            listen_addr: Self::DEFAULT_LISTEN_ADDR
                .parse()
                .expect("valid default address"),
            public_url: None,
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
            username: username.into(),
            password: SecretString::from(password.into()),
            subdomain: "brain".to_owned(),
            apicp: "sf-api.com".to_owned(),
            appcp: "sharefile.com".to_owned(),
            access_token_ttl: Duration::from_secs(8 * 3600),
            rotate_refresh_tokens: false,
            root_folders: Vec::new(),
            max_file_size_bytes: None,
            quota_bytes: None,
            max_body_bytes: 256 * 1024 * 1024,
            ledger_capacity: 100_000,
            seed: 0,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] with an injectable lookup, for unit tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(PREFIX, lookup);
        let mut c = Self::new(
            env.required("CLIENT_ID")?,
            env.required("CLIENT_SECRET")?,
            env.required("USERNAME")?,
            env.required("PASSWORD")?,
        );
        let secs = |v: f64| Duration::from_secs_f64(v);
        env.set("LISTEN_ADDR", &mut c.listen_addr, |v| v)?;
        c.public_url = env
            .get("PUBLIC_URL")
            .map(|u| u.trim_end_matches('/').to_owned());
        env.set("SUBDOMAIN", &mut c.subdomain, |v| v)?;
        env.set("APICP", &mut c.apicp, |v| v)?;
        env.set("APPCP", &mut c.appcp, |v| v)?;
        env.set("ACCESS_TOKEN_TTL_SECS", &mut c.access_token_ttl, secs)?;
        env.set("ROTATE_REFRESH_TOKENS", &mut c.rotate_refresh_tokens, |v| v)?;
        if let Some(folders) = env.get("ROOT_FOLDERS") {
            c.root_folders = folders
                .split(',')
                .map(|f| f.trim().to_owned())
                .filter(|f| !f.is_empty())
                .collect();
        }
        env.set("MAX_FILE_SIZE_BYTES", &mut c.max_file_size_bytes, Some)?;
        env.set("QUOTA_BYTES", &mut c.quota_bytes, Some)?;
        env.set("MAX_BODY_BYTES", &mut c.max_body_bytes, |v| v)?;
        env.set("LEDGER_CAPACITY", &mut c.ledger_capacity, |v| v)?;
        env.set("SEED", &mut c.seed, |v| v)?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.access_token_ttl.is_zero() {
            return Err(constraint("access_token_ttl", "must be positive"));
        }
        if self.max_body_bytes == 0 || self.ledger_capacity == 0 {
            let field = if self.max_body_bytes == 0 {
                "max_body_bytes"
            } else {
                "ledger_capacity"
            };
            return Err(constraint(field, "must be at least 1"));
        }
        if let Some(bad) = self.root_folders.iter().find(|f| !f.starts_with('/')) {
            return Err(constraint(
                "root_folders",
                &format!("{bad:?} must be an absolute path such as /Clients"),
            ));
        }
        if self
            .public_url
            .as_deref()
            .is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(constraint(
                "public_url",
                "must start with http:// or https://",
            ));
        }
        Ok(())
    }
}

/// Secrets are redacted by `SecretString`.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen_addr", &self.listen_addr)
            .field("public_url", &self.public_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("subdomain", &self.subdomain)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("root_folders", &self.root_folders)
            .field("max_file_size_bytes", &self.max_file_size_bytes)
            .field("quota_bytes", &self.quota_bytes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const SECRETS: [(&str, &str); 4] = [
        ("SHAREFILE_SIM__CLIENT_ID", "id"),
        ("SHAREFILE_SIM__CLIENT_SECRET", "hunter2"),
        ("SHAREFILE_SIM__USERNAME", "robot@example.com"),
        ("SHAREFILE_SIM__PASSWORD", "correct-horse"),
    ];

    #[test]
    fn defaults_and_redaction() {
        let mut vars = SECRETS.to_vec();
        vars.push(("SHAREFILE_SIM__ROOT_FOLDERS", "/Clients, /Archive"));
        vars.push(("SHAREFILE_SIM__QUOTA_BYTES", "1000"));
        let c = Config::from_lookup(lookup(&vars)).unwrap();
        assert_eq!(c.access_token_ttl, Duration::from_secs(28800));
        assert_eq!(c.root_folders, ["/Clients", "/Archive"]);
        assert_eq!((c.quota_bytes, c.max_file_size_bytes), (Some(1000), None));
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("correct-horse"),
            "{debug}"
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let err = Config::from_lookup(lookup(&SECRETS[..3])).unwrap_err();
        assert!(err.to_string().contains("SHAREFILE_SIM__PASSWORD"), "{err}");
        let mut vars = SECRETS.to_vec();
        vars.push(("SHAREFILE_SIM__QUOTA_BYTES", "lots"));
        let err = Config::from_lookup(lookup(&vars)).unwrap_err();
        assert!(
            err.to_string().contains("SHAREFILE_SIM__QUOTA_BYTES"),
            "{err}"
        );
        let mut vars = SECRETS.to_vec();
        vars.push(("SHAREFILE_SIM__ROOT_FOLDERS", "Clients"));
        let err = Config::from_lookup(lookup(&vars)).unwrap_err();
        assert!(err.to_string().contains("root_folders"), "{err}");
    }
}
