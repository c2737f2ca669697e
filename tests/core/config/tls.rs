//! TLS settings: which host is spoken to over TLS, with which certificate directory, and the
//! errors that say what is missing. Docker's own variables (`DOCKER_TLS_VERIFY`,
//! `DOCKER_CERT_PATH`) behave as they do for the docker CLI.

use std::path::PathBuf;

use pruneguard::cli::RunArgs;
use pruneguard::config::{Environment, HostUrl, Mode, Settings};

use super::{Config, no_config};

/// Environment variables, name and value.
type Pairs<'a> = &'a [(&'a str, &'a str)];

fn resolve_env(args: &RunArgs, pairs: &[(&str, &str)]) -> Result<Settings, String> {
    let env = Environment::from_pairs(pairs.iter().copied());
    Settings::resolve_with(args, Mode::Run, &env).map_err(|error| {
        let message = error.to_string();
        assert_eq!(pruneguard::exit::code(&Err(error.into())), 2, "{message}");
        message
    })
}

/// What the engine is spoken to with: its URL and its TLS directory.
fn engine(args: &RunArgs, pairs: &[(&str, &str)]) -> (String, Option<PathBuf>) {
    let settings = resolve_env(args, pairs).unwrap_or_else(|error| panic!("{pairs:?}: {error}"));
    assert_eq!(
        settings.host.is_tls(),
        settings.tls.is_some(),
        "TLS files go with a TLS host, and only with one"
    );
    (
        settings.host.to_string(),
        settings.tls.map(|files| files.dir),
    )
}

#[test]
fn the_engine_speaks_tls_as_the_docker_cli_would() {
    let none = no_config();
    let tls_dir = Some(PathBuf::from("/etc/docker-tls"));
    #[rustfmt::skip]
    let cases: [(Pairs, &str, Option<PathBuf>); 6] = [
        // Plain TCP stays plain; a certificate directory alone does not turn TLS on.
        (&[("DOCKER_HOST", "tcp://10.0.0.5:2375"), ("DOCKER_CERT_PATH", "/etc/docker-tls")],
         "tcp://10.0.0.5:2375", None),
        // DOCKER_TLS_VERIFY makes the same tcp:// host TLS, port kept ("0" too, as the CLI).
        (&[("DOCKER_HOST", "tcp://10.0.0.5:2376"), ("DOCKER_TLS_VERIFY", "1"),
           ("DOCKER_CERT_PATH", "/etc/docker-tls")],
         "https://10.0.0.5:2376", tls_dir.clone()),
        (&[("DOCKER_HOST", "tcp://10.0.0.5:2376"), ("DOCKER_TLS_VERIFY", "0"),
           ("DOCKER_CERT_PATH", "/etc/docker-tls")],
         "https://10.0.0.5:2376", tls_dir.clone()),
        // An https:// host is TLS by itself, on 2376 by default.
        (&[("DOCKER_HOST", "https://docker.lan"), ("DOCKER_CERT_PATH", "/etc/docker-tls")],
         "https://docker.lan:2376", tls_dir.clone()),
        // A unix socket takes no TLS: the variables are left alone, as the CLI leaves them.
        (&[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", "/etc/docker-tls")],
         "unix:///var/run/docker.sock", None),
        // An empty variable is unset.
        (&[("DOCKER_HOST", "tcp://10.0.0.5:2375"), ("DOCKER_TLS_VERIFY", "")],
         "tcp://10.0.0.5:2375", None),
    ];
    for (pairs, url, dir) in cases {
        assert_eq!(engine(&none, pairs), (url.to_string(), dir), "{pairs:?}");
    }
    // The flags do the same, and beat the variables.
    let flags = RunArgs {
        host: Some("tcp://10.0.0.6:2376".into()),
        tlsverify: true,
        tls_cert_path: Some("/flag/tls".into()),
        ..no_config()
    };
    assert_eq!(
        engine(&flags, &[("DOCKER_CERT_PATH", "/env/tls")]),
        (
            "https://10.0.0.6:2376".to_string(),
            Some(PathBuf::from("/flag/tls"))
        )
    );
}

#[test]
fn a_tls_host_without_its_certificate_directory_is_an_error_naming_where_tls_was_asked() {
    for (args, pairs, start) in [
        (
            RunArgs {
                host: Some("https://docker.lan".into()),
                ..no_config()
            },
            vec![],
            "-H/--host (`engine.host`): asks for TLS to https://docker.lan:2376",
        ),
        (
            no_config(),
            vec![
                ("DOCKER_HOST", "tcp://docker.lan:2376"),
                ("DOCKER_TLS_VERIFY", "1"),
            ],
            "environment variable DOCKER_TLS_VERIFY (`engine.tls_verify`): asks for TLS",
        ),
        (
            RunArgs {
                host: Some("tcp://docker.lan".into()),
                tlsverify: true,
                ..no_config()
            },
            vec![],
            "--tlsverify (`engine.tls_verify`): asks for TLS to https://docker.lan:2375",
        ),
    ] {
        let error = resolve_env(&args, &pairs).unwrap_err();
        assert!(error.starts_with(start), "{error}");
        for fix in ["engine.tls_cert_path", "DOCKER_CERT_PATH", "ca.pem"] {
            assert!(error.contains(fix), "{fix}: {error}");
        }
    }
    let config = Config::new("[engine]\nhost = \"tcp://docker.lan\"\ntls_verify = true\n");
    let error = config.error();
    assert!(
        error.contains(":3: `engine.tls_verify`: asks for TLS"),
        "{error}"
    );
    let error = super::error_naming(
        "[engine]\ntls_cert_path = \"tls\"\n",
        "2: `engine.tls_cert_path`",
    );
    assert!(error.contains("absolute"), "{error}");
}

#[test]
fn the_manager_speaks_tls_when_it_has_a_certificate_directory() {
    let manager = |host: &str, dir: Option<&str>| RunArgs {
        swarm_manager_host: Some(host.into()),
        swarm_manager_tls_cert_path: dir.map(PathBuf::from),
        ..no_config()
    };
    for (args, url, dir) in [
        (
            manager("tcp://10.0.0.1:2376", Some("/tls")),
            "https://10.0.0.1:2376",
            Some("/tls"),
        ),
        (
            manager("https://m.lan", Some("/tls")),
            "https://m.lan:2376",
            Some("/tls"),
        ),
        (
            manager("tcp://10.0.0.1:2375", None),
            "tcp://10.0.0.1:2375",
            None,
        ),
        (
            manager("unix:///run/m.sock", None),
            "unix:///run/m.sock",
            None,
        ),
    ] {
        let settings = resolve_env(&args, &[]).unwrap();
        let host = settings.swarm_manager_host.as_ref().unwrap();
        assert_eq!(host.to_string(), url);
        // The swarm gate's evidence names the host as it is spoken to.
        assert_eq!(
            settings.policy.gates.swarm.manager_host.as_deref(),
            Some(url)
        );
        assert_eq!(
            settings.swarm_manager_tls.map(|files| files.dir),
            dir.map(PathBuf::from)
        );
        // The engine's own TLS settings are not the manager's.
        assert!(settings.tls.is_none());
    }
    // The engine's DOCKER_TLS_VERIFY does not make the manager TLS.
    let settings = resolve_env(
        &manager("tcp://10.0.0.1:2375", None),
        &[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", "/d")],
    )
    .unwrap();
    assert_eq!(
        settings.swarm_manager_host,
        Some(HostUrl::Tcp {
            host: "10.0.0.1".into(),
            port: 2375
        })
    );

    for (args, pairs, needles) in [
        (
            manager("https://m.lan:2376", None),
            vec![],
            vec![
                "--swarm-manager-host (`gates.swarm.manager_host`): https://m.lan:2376 is a TLS host",
                "gates.swarm.manager_tls_cert_path",
            ],
        ),
        (
            manager("unix:///run/m.sock", Some("/tls")),
            vec![],
            vec![
                "--swarm-manager-tls-cert-path (`gates.swarm.manager_tls_cert_path`): is set",
                "unix socket",
            ],
        ),
        (
            no_config(),
            vec![("PRUNEGUARD_SWARM_MANAGER_TLS_CERT_PATH", "/tls")],
            vec![
                "environment variable PRUNEGUARD_SWARM_MANAGER_TLS_CERT_PATH",
                "gates.swarm.manager_host",
            ],
        ),
    ] {
        let error = resolve_env(&args, &pairs).unwrap_err();
        for needle in needles {
            assert!(error.contains(needle), "{needle}: {error}");
        }
    }
}

#[test]
fn tls_settings_print_and_load_back() {
    let config = Config::new(
        "[engine]\nhost = \"tcp://docker.lan:2376\"\ntls_verify = true\n\
         tls_cert_path = \"/etc/pruneguard/tls\"\n\
         [gates.swarm]\nmanager_host = \"tcp://10.0.0.1:2376\"\n\
         manager_tls_cert_path = \"/etc/pruneguard/manager-tls\"\n",
    );
    let settings = config.resolve().unwrap();
    let printed = settings.effective();
    for line in [
        "host = \"https://docker.lan:2376\"",
        "tls_verify = true",
        "tls_cert_path = \"/etc/pruneguard/tls\"",
        "manager_host = \"https://10.0.0.1:2376\"",
        "manager_tls_cert_path = \"/etc/pruneguard/manager-tls\"",
    ] {
        assert!(printed.lines().any(|l| l == line), "{line}:\n{printed}");
    }
    let again = Config::new(&printed).resolve().unwrap();
    assert_eq!(
        again.effective().lines().skip(1).collect::<Vec<_>>(),
        printed.lines().skip(1).collect::<Vec<_>>()
    );
    assert_eq!(again.host, settings.host);
    assert_eq!(again.tls, settings.tls);
    assert_eq!(again.swarm_manager_tls, settings.swarm_manager_tls);
}
