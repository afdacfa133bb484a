//! Recreating a Compose service through the Compose CLI (`docker compose` or the standalone
//! `docker-compose`), by argv with a deadline: the Engine API has no notion of a Compose file.

use std::time::Duration;

use container_runtime::{ComposeService, RuntimeError, RuntimeOperation};
use sysutil::command::{Command, RunError};

use super::{DockerTls, ADAPTER};

/// How the Compose CLI is run: its argv prefix (`["docker", "compose"]` or
/// `["docker-compose"]`) and the deadline of one `up` (which may pull an image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeCommand {
    /// Program and leading arguments.
    pub argv: Vec<String>,
    /// The deadline of one call; the whole process group is killed after it.
    pub deadline: Duration,
}

impl Default for ComposeCommand {
    fn default() -> Self {
        ComposeCommand {
            argv: vec!["docker".into(), "compose".into()],
            deadline: Duration::from_secs(120),
        }
    }
}

/// A Compose project or service name as Compose allows it; anything else is refused before it
/// reaches an argv (a leading `-` would be read as a flag).
fn check_name(what: &str, name: &str) -> Result<(), RuntimeError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidInput {
            label: Some(name.to_string()),
            detail: format!("compose {what} {name:?}: use letters, digits, '_', '.', '-'"),
        })
    }
}

/// A Compose run that did not succeed.
#[derive(Debug, thiserror::Error)]
#[error("`{argv}` exited with {code:?}: {stderr}")]
struct ComposeFailed {
    argv: String,
    code: Option<i32>,
    stderr: String,
}

impl ComposeCommand {
    /// Runs `docker-compose` (the standalone v1/v2 binary) instead of `docker compose`.
    pub fn standalone() -> Self {
        ComposeCommand {
            argv: vec!["docker-compose".into()],
            ..ComposeCommand::default()
        }
    }

    /// The full argv of `up -d --no-deps --force-recreate SERVICE` for `service`: only that
    /// service, and replaced even when Compose finds its config unchanged (a crash-looping
    /// container is running with the config it was given; a plain `up` would leave it alone).
    /// Both Compose v2 (`docker compose`) and the standalone v1 `docker-compose` take these flags.
    pub fn up_argv(&self, service: &ComposeService) -> Result<Vec<String>, RuntimeError> {
        if self.argv.is_empty() {
            return Err(RuntimeError::invalid_input("the compose command is empty"));
        }
        check_name("project", &service.project)?;
        check_name("service", &service.service)?;
        if !service.file.is_absolute() {
            return Err(RuntimeError::InvalidInput {
                label: Some(service.service.clone()),
                detail: format!(
                    "compose file {}: the path must be absolute",
                    service.file.display()
                ),
            });
        }
        let mut argv = self.argv.clone();
        argv.extend([
            "-p".to_string(),
            service.project.clone(),
            "-f".to_string(),
            service.file.display().to_string(),
            "up".into(),
            "-d".into(),
            "--no-deps".into(),
            "--force-recreate".into(),
            service.service.clone(),
        ]);
        Ok(argv)
    }

    /// `up -d --no-deps --force-recreate SERVICE` against the engine at `docker_host` (over TLS with `tls`: the
    /// Docker CLI reads `ca.pem`, `cert.pem` and `key.pem` from one folder, so the files must
    /// be named so, side by side).
    pub(super) async fn up(
        &self,
        docker_host: &str,
        tls: Option<&DockerTls>,
        service: &ComposeService,
    ) -> Result<(), RuntimeError> {
        let argv = self.up_argv(service)?;
        let op = RuntimeOperation::Recreate;
        let mut command = Command::new(&argv[0], self.deadline)
            .args(&argv[1..])
            .env("DOCKER_HOST", docker_host);
        if let Some(tls) = tls {
            command = command
                .env("DOCKER_TLS_VERIFY", "1")
                .env("DOCKER_CERT_PATH", cert_folder(tls)?);
        }
        let out = command.run().await.map_err(|e| match e {
            RunError::Timeout { after } => RuntimeError::Timeout {
                operation: op,
                after,
            },
            RunError::NotFound { .. } => RuntimeError::Unavailable {
                adapter: ADAPTER.into(),
                detail: format!("the compose command: {e}"),
            },
            other => RuntimeError::Backend {
                adapter: ADAPTER.into(),
                source: Box::new(other),
            },
        })?;
        if out.success() {
            return Ok(());
        }
        let stderr = out.stderr.trim();
        // Compose's own words for a service its file does not define.
        if stderr.contains("no such service") {
            return Err(RuntimeError::NotFound {
                what: format!("{service} in {}", service.file.display()),
            });
        }
        Err(RuntimeError::Backend {
            adapter: ADAPTER.into(),
            source: Box::new(ComposeFailed {
                argv: argv.join(" "),
                code: out.code(),
                stderr: stderr.lines().rev().take(5).collect::<Vec<_>>().join(" / "),
            }),
        })
    }
}

/// The one folder holding `ca.pem`, `cert.pem` and `key.pem`, as the Docker CLI wants them.
fn cert_folder(tls: &DockerTls) -> Result<std::path::PathBuf, RuntimeError> {
    let dir = tls.cert.parent().map(std::path::Path::to_path_buf);
    let standard = dir.as_ref().is_some_and(|d| {
        tls.ca == d.join("ca.pem") && tls.cert == d.join("cert.pem") && tls.key == d.join("key.pem")
    });
    match dir {
        Some(dir) if standard => Ok(dir),
        _ => Err(RuntimeError::InvalidInput {
            label: None,
            detail: "the Compose CLI reads TLS files as ca.pem, cert.pem and key.pem in one folder; name them so to recreate over TLS".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(project: &str, file: &str, service: &str) -> ComposeService {
        ComposeService {
            project: project.into(),
            file: file.into(),
            service: service.into(),
        }
    }

    #[test]
    fn the_argv_recreates_one_service_without_its_dependencies() {
        let argv = ComposeCommand::standalone()
            .up_argv(&svc("central", "/opt/central/compose.yaml", "redis"))
            .unwrap();
        assert_eq!(
            argv,
            [
                "docker-compose",
                "-p",
                "central",
                "-f",
                "/opt/central/compose.yaml",
                "up",
                "-d",
                "--no-deps",
                "--force-recreate",
                "redis"
            ]
        );
        let plugin = ComposeCommand::default()
            .up_argv(&svc("central", "/c.yaml", "redis"))
            .unwrap();
        assert_eq!(&plugin[..2], ["docker", "compose"]);
    }

    /// A Compose that hangs (a pull that never ends, an engine that never answers it) is a
    /// timeout at its deadline, and everything it started is gone with it.
    #[tokio::test]
    async fn a_hung_compose_command_is_a_timeout_and_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // Its child (the sleep) records itself: the whole process group must go, not only sh.
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let compose = ComposeCommand {
            argv: vec!["sh".into(), "-c".into(), script],
            deadline: Duration::from_millis(300),
        };
        let asked = std::time::Instant::now();
        let e = compose
            .up("unix:///nonexistent.sock", None, &svc("p", "/c.yaml", "s"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                RuntimeError::Timeout {
                    operation: RuntimeOperation::Recreate,
                    after
                } if after == Duration::from_millis(300)
            ),
            "{e:?}"
        );
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "{:?}",
            asked.elapsed()
        );
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let proc_dir = std::path::PathBuf::from(format!("/proc/{}", pid.trim()));
        // Gone, or a zombie waiting for whoever inherited it to reap it.
        let gone = || {
            std::fs::read_to_string(proc_dir.join("stat")).map_or(true, |stat| {
                stat.rsplit_once(") ")
                    .is_some_and(|(_, r)| r.starts_with('Z'))
            })
        };
        for _ in 0..50 {
            if gone() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the hung compose's child {} is still running", pid.trim());
    }

    #[test]
    fn names_that_would_read_as_flags_are_refused() {
        let c = ComposeCommand::default();
        for bad in [
            svc("-p", "/c.yaml", "redis"),
            svc("central", "/c.yaml", "--force-recreate"),
            svc("central", "relative.yaml", "redis"),
            svc("", "/c.yaml", "redis"),
        ] {
            assert!(c.up_argv(&bad).is_err(), "{bad:?}");
        }
    }
}
