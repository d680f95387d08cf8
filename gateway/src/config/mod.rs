//! The one typed configuration: a TOML file, then environment variables on top (the sidecar way).
//!
//! Unknown fields are errors: a typo must never silently relax anything. Secrets may come from
//! the file, from a file of their own, or from the environment; they are never logged.

pub mod credentials;
mod file;
mod resolve;
mod settings;

pub use file::*;
pub use resolve::*;
pub use settings::*;

/// Where the gateway listens when nothing else is said.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9000";
/// Where the gateway keeps its state when nothing else is said.
pub const DEFAULT_DATA_DIR: &str = "./wormgate-data";
/// The region clients and the backend sign for when nothing else is said.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The admin listener's address when none is configured.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9001";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, &'static str>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| (*s).to_owned())
        }
    }

    fn env(pairs: &[(&'static str, &'static str)]) -> MapEnv {
        MapEnv(pairs.iter().copied().collect())
    }

    #[test]
    fn defaults_are_the_embedded_store_on_loopback() {
        let s = Settings::resolve(FileConfig::default(), &env(&[])).expect("resolves");
        assert_eq!(s.listen.to_string(), "127.0.0.1:9000");
        assert!(matches!(s.backend, BackendSettings::Embedded));
        assert!(s.users.is_empty());
    }

    #[test]
    fn worker_threads_default_to_at_least_one_and_refuse_zero() {
        let s = Settings::resolve(FileConfig::default(), &env(&[])).expect("resolves");
        assert!(s.worker_threads >= 1);
        let file: FileConfig = toml::from_str("[server]\nworker_threads = 3\n").expect("parses");
        let s = Settings::resolve(file, &env(&[])).expect("resolves");
        assert_eq!(s.worker_threads, 3);
        let err = Settings::resolve(
            FileConfig::default(),
            &env(&[("WORMGATE_WORKER_THREADS", "0")]),
        )
        .expect_err("zero threads serve nothing");
        assert!(err.to_string().contains("worker_threads"), "{err}");
    }

    #[test]
    fn records_in_memory_are_off_unless_asked_for() {
        let s = Settings::resolve(FileConfig::default(), &env(&[])).expect("resolves");
        assert!(!s.locks.index_records_in_memory);
        let file: FileConfig =
            toml::from_str("[locks]\nindex_records_in_memory = true\n").expect("parses");
        let s = Settings::resolve(file, &env(&[])).expect("resolves");
        assert!(s.locks.index_records_in_memory);
        let off = env(&[("WORMGATE_INDEX_RECORDS_IN_MEMORY", "false")]);
        let file: FileConfig =
            toml::from_str("[locks]\nindex_records_in_memory = true\n").expect("parses");
        assert!(
            !Settings::resolve(file, &off)
                .expect("resolves")
                .locks
                .index_records_in_memory
        );
        let err = Settings::resolve(
            FileConfig::default(),
            &env(&[("WORMGATE_INDEX_RECORDS_IN_MEMORY", "yes")]),
        )
        .expect_err("only true or false");
        assert!(err.to_string().contains("not true or false"), "{err}");
    }

    #[test]
    fn unknown_field_is_an_error() {
        let err = toml::from_str::<FileConfig>(
            "[server]\nlisten = \"127.0.0.1:1\"\nretention_off = true\n",
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("retention_off"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let file: FileConfig = toml::from_str(
            r#"
            [server]
            listen = "127.0.0.1:1"
            [backend]
            url = "http://127.0.0.1:2"
            access_key = "file-ak"
            secret_key = "file-sk"
            [[users]]
            access_key = "agent"
            secret_key = "agent-secret"
            buckets = ["backups"]
            "#,
        )
        .expect("parses");
        let s = Settings::resolve(
            file,
            &env(&[
                ("WORMGATE_LISTEN", "127.0.0.1:3"),
                ("WORMGATE_BACKEND_URL", "https://example.invalid"),
                ("WORMGATE_BACKEND_SECRET_KEY", "env-sk"),
                ("WORMGATE_ACCESS_KEY", "envuser"),
                ("WORMGATE_SECRET_KEY", "envsecret"),
            ]),
        )
        .expect("resolves");
        assert_eq!(s.listen.port(), 3);
        let BackendSettings::Remote(b) = &s.backend else {
            panic!("remote expected")
        };
        assert_eq!(b.url.to_string(), "https://example.invalid/");
        assert_eq!(b.access_key, "file-ak");
        assert_eq!(b.secret_key.expose(), "env-sk");
        assert_eq!(s.users.len(), 2);
        assert!(!s.users[0].buckets.allows("other"));
        assert!(s.users[1].buckets.allows("other"));
    }

    #[test]
    fn backend_without_secret_is_refused() {
        let err = Settings::resolve(
            FileConfig::default(),
            &env(&[
                ("WORMGATE_BACKEND_URL", "http://127.0.0.1:2"),
                ("WORMGATE_BACKEND_ACCESS_KEY", "ak"),
            ]),
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "<redacted>");
    }
}

#[cfg(test)]
mod shipped_configs {
    use super::*;
    use std::path::Path;

    /// Every example in configs/ parses; the local one resolves as written.
    #[test]
    fn shipped_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("configs dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) == Some("toml") {
                FileConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(
            seen >= 2,
            "expected the shipped configs in {}",
            dir.display()
        );
        let local = FileConfig::load(&dir.join("local.toml")).expect("local.toml");
        let s = Settings::resolve(local, &ProcessEnvless).expect("resolves");
        assert_eq!(s.users.len(), 2);
        assert!(matches!(s.backend, BackendSettings::Embedded));
    }

    struct ProcessEnvless;
    impl Env for ProcessEnvless {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }
}
