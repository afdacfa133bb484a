//! Shared test plumbing: a fake tool (`tests/fake/<name>`) behind a wrapper script that points it
//! at a fresh state folder, so tests can run in parallel without touching the environment.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

pub struct FakeTool {
    pub root: tempfile::TempDir,
    pub state: PathBuf,
    pub bin_dir: PathBuf,
    pub wrapper: PathBuf,
}

impl FakeTool {
    /// `name` is the fake's file under `tests/fake/`; `state_var` the variable naming its state.
    pub fn new(name: &str, state_var: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("tempdir");
        let state = root.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let bin_dir = root.path().join("bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        let fake = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fake")
            .join(name);
        let wrapper = bin_dir.join(name);
        // Run through sh so the fake's executable bit does not matter.
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\n{state_var}='{}' exec /bin/sh '{}' \"$@\"\n",
                state.display(),
                fake.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeTool {
            root,
            state,
            bin_dir,
            wrapper,
        }
    }

    /// Every call's arguments so far, one string per call.
    pub fn argv_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.state.join("argv.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn clear_log(&self) {
        let _ = std::fs::remove_file(self.state.join("argv.log"));
    }

    /// Writes a control file in the fake's state folder.
    pub fn set(&self, control: &str, content: &str) {
        std::fs::write(self.state.join(control), content).unwrap();
    }

    pub fn unset(&self, control: &str) {
        let _ = std::fs::remove_file(self.state.join(control));
    }

    /// Runs the fake directly (test-only verbs), asserting success.
    pub fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(&self.wrapper)
            .args(args)
            .output()
            .expect("run fake");
        assert!(
            out.status.success(),
            "fake {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// After a call the `hang-with-child` control held timed out: waits until no live process
    /// is left in that call's process group (the fake and the child it started).
    pub async fn assert_hung_group_gone(&self) {
        let pgid: u32 = std::fs::read_to_string(self.state.join("hang-pid"))
            .expect("the fake started within the deadline")
            .trim()
            .parse()
            .unwrap();
        sysutil::command::group::wait_until_empty(pgid, std::time::Duration::from_secs(10)).await;
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }
}
