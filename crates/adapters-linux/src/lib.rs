//! Linux adapters for the joelclaw ports, so a Linux node runs the same heal loop as a Mac:
//!
//! - [`SystemdProcessManager`]: [`process_manager::ProcessManagerPort`] over systemd, the
//!   supervisor of record on Linux. It drives `systemctl` by argv with a deadline on every call
//!   (the system manager, a `--user` manager, another machine through `--machine`/`--host` or a
//!   command prefix such as `nsenter`) for jobs, reads unit state over systemd's D-Bus API on
//!   one kept connection (or from `systemctl show` properties, many units a call, where no bus
//!   is reached), pushes service state changes from the bus's signals, and installs services as unit files generated from a
//!   [`process_manager::ServiceConfig`] with systemd's own quoting rules: sandboxed by default
//!   (≤ 2.5 in `systemd-analyze security`, each protection relaxable by name), and for jobs a
//!   `oneshot` service with the `.timer`/`.path` units of its triggers.
//! - [`DockerRuntime`]: the container engine ([`container_runtime::EnginePort`]) over the Docker
//!   Engine API (a local unix socket or a remote `tcp://` engine, TLS with the `docker-tls`
//!   feature) through bollard, with short
//!   deadlines and server status codes mapped to meanings; Compose services are recreated through
//!   the Compose CLI ([`ComposeCommand`]). This is the only place in the workspace that links
//!   bollard. [`SystemdDockerSubstrate`] is the daemon under systemd as a
//!   [`container_runtime::SubstratePort`], brought back through the systemd adapter.
//!
//! Both compile on every OS; their tests run against real daemons (`scripts/test` boots systemd
//! in a container and starts a private dockerd) and against captured outputs.

mod docker;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod systemd;

pub use docker::{
    ComposeCommand, DockerEndpoint, DockerRuntime, DockerTls, SystemdDockerSubstrate,
};
pub use systemd::unit_read;
pub use systemd::{BusAddress, ServiceAccount, SystemdProcessManager, SystemdTarget};
