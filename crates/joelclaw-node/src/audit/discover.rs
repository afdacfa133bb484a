//! Finding every service definition in the system and per-user domains under the root, and
//! reading each into its label, account and every string it holds. A definition that cannot be
//! listed, followed or read is returned as broken, never dropped.

use std::path::{Path, PathBuf};

use adapters_linux::unit_read::read_unit;
use adapters_macos::launchd::plist_read::read_plist;

use super::accounts::on_root;

/// The domain a definition is installed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `/Library/LaunchDaemons` (or the launchd manager's definition folder).
    SystemDaemon,
    /// `/Library/LaunchAgents`: loaded into every person's login session.
    GlobalAgent,
    /// `<home>/Library/LaunchAgents`.
    UserAgent,
    /// `/etc/systemd/system` (or the systemd manager's definition folder).
    SystemUnit,
    /// `<home>/.config/systemd/user`.
    UserUnit,
}

impl Kind {
    pub(super) fn is_system(self) -> bool {
        matches!(self, Kind::SystemDaemon | Kind::SystemUnit)
    }
    pub(super) fn is_unit(self) -> bool {
        matches!(self, Kind::SystemUnit | Kind::UserUnit)
    }
}

/// One string of a definition and where it sits (`ProgramArguments[2]`, `Service.ExecStart`).
#[derive(Debug, Clone)]
pub(super) struct Field {
    pub key: String,
    pub text: String,
}

impl Field {
    /// Whether it says what runs (launchd `Program`/`ProgramArguments`, systemd `Exec*=`).
    pub(super) fn is_command(&self) -> bool {
        self.key.starts_with("Program") || self.key.starts_with("Service.Exec")
    }
}

/// A definition that was read.
#[derive(Debug)]
pub(super) struct Definition {
    pub path: PathBuf,
    /// The file it resolves to (itself unless it is a symlink).
    pub file: PathBuf,
    pub kind: Kind,
    /// The home folder's name, for a definition in a per-user domain.
    pub domain_of: Option<String>,
    pub label: String,
    /// The account it runs as, when it names one.
    pub user: Option<String>,
    pub fields: Vec<Field>,
}

/// What discovery found at one place.
#[derive(Debug)]
pub(super) enum Entry {
    Read(Definition),
    /// A systemd unit linked to `/dev/null`: deliberately disabled.
    Masked(PathBuf),
    /// Unlistable, unfollowable, not a file, or not a definition.
    Broken {
        path: PathBuf,
        why: String,
    },
}

/// Where definitions are looked for, relative to the root (for messages).
pub(super) const SEARCHED: &str =
    "Library/LaunchDaemons, Library/LaunchAgents, etc/systemd/system, \
    {Users,home}/*/Library/LaunchAgents, {Users,home}/*/.config/systemd/user";

/// Every definition under `root`, in a stable order; `extra` adds system-domain folders (a
/// manager's own definition folder).
pub(super) fn discover(root: &Path, extra: &[(PathBuf, Kind)]) -> Vec<Entry> {
    let mut places: Vec<(PathBuf, Kind, Option<String>)> = vec![
        (root.join("Library/LaunchDaemons"), Kind::SystemDaemon, None),
        (root.join("Library/LaunchAgents"), Kind::GlobalAgent, None),
        (root.join("etc/systemd/system"), Kind::SystemUnit, None),
    ];
    for (dir, kind) in extra {
        if !places.iter().any(|(d, _, _)| d == dir) {
            places.push((dir.clone(), *kind, None));
        }
    }
    let mut out = Vec::new();
    for homes in ["Users", "home"] {
        let (dirs, broken) = entries(&root.join(homes), |_| true);
        out.extend(broken);
        for home in dirs.into_iter().filter(|h| h.is_dir()) {
            let name = home.file_name().map(|n| n.to_string_lossy().into_owned());
            places.push((
                home.join("Library/LaunchAgents"),
                Kind::UserAgent,
                name.clone(),
            ));
            places.push((home.join(".config/systemd/user"), Kind::UserUnit, name));
        }
    }
    for (dir, kind, owner) in places {
        let ext = if kind.is_unit() { ".service" } else { ".plist" };
        let (files, broken) = entries(&dir, |name| name.ends_with(ext));
        out.extend(broken);
        out.extend(
            files
                .into_iter()
                .map(|p| read(root, p, kind, owner.clone())),
        );
    }
    out
}

/// The entries of `dir` whose name passes `keep`, sorted; a folder that exists but cannot be
/// listed is broken. A missing folder has nothing in it.
fn entries(dir: &Path, keep: impl Fn(&str) -> bool) -> (Vec<PathBuf>, Vec<Entry>) {
    let mut broken = Vec::new();
    let list = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Vec::new(), broken),
        Err(e) => {
            broken.push(Entry::Broken {
                path: dir.to_path_buf(),
                why: format!("cannot list the folder: {e}"),
            });
            return (Vec::new(), broken);
        }
    };
    let mut out = Vec::new();
    for e in list {
        match e {
            Ok(e) if keep(&e.file_name().to_string_lossy()) => out.push(e.path()),
            Ok(_) => {}
            Err(e) => broken.push(Entry::Broken {
                path: dir.to_path_buf(),
                why: format!("cannot list an entry: {e}"),
            }),
        }
    }
    out.sort();
    (out, broken)
}

/// Follows `path`'s symlinks, taking absolute targets under `root` (an audited tree's links
/// point into the tree, not at the running host); `/dev/null` stays itself (a masked unit).
fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf, String> {
    const MAX_LINKS: usize = 40;
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let meta = std::fs::symlink_metadata(&current)
            .map_err(|e| format!("cannot follow it to {}: {e}", current.display()))?;
        if !meta.file_type().is_symlink() {
            return Ok(current);
        }
        let target = std::fs::read_link(&current)
            .map_err(|e| format!("cannot read the link {}: {e}", current.display()))?;
        current = if target == Path::new("/dev/null") {
            return Ok(target);
        } else if target.is_absolute() {
            on_root(root, &target)
        } else {
            current.parent().unwrap_or(root).join(target)
        };
    }
    Err(format!(
        "a symlink loop: more than {MAX_LINKS} links from {}",
        path.display()
    ))
}

fn read(root: &Path, path: PathBuf, kind: Kind, domain_of: Option<String>) -> Entry {
    let broken = |why: String| Entry::Broken {
        path: path.clone(),
        why,
    };
    let file = match resolve_in_root(root, &path) {
        Ok(f) => f,
        Err(e) => return broken(e),
    };
    if kind.is_unit() && file == Path::new("/dev/null") {
        return Entry::Masked(path);
    }
    let meta = match std::fs::metadata(&file) {
        Ok(m) => m,
        Err(e) => return broken(format!("cannot read {}: {e}", file.display())),
    };
    if meta.is_dir() {
        return broken("a folder, not a definition file".into());
    }
    if !meta.is_file() {
        return broken("not a regular file".into());
    }
    let parsed = if kind.is_unit() {
        read_systemd(&path, &file)
    } else {
        read_launchd(&file)
    };
    match parsed {
        Ok((label, user, fields)) => Entry::Read(Definition {
            path,
            file,
            kind,
            domain_of,
            label,
            user,
            fields,
        }),
        Err(why) => broken(why),
    }
}

type Parts = (String, Option<String>, Vec<Field>);

fn read_launchd(path: &Path) -> Result<Parts, String> {
    let typed = read_plist(path)?;
    let value = plist::Value::from_file(path).map_err(|e| format!("not a readable plist: {e}"))?;
    let mut fields = Vec::new();
    walk_plist(String::new(), &value, &mut fields);
    Ok((typed.label, typed.user, fields))
}

fn walk_plist(key: String, value: &plist::Value, out: &mut Vec<Field>) {
    match value {
        plist::Value::String(text) => out.push(Field {
            key,
            text: text.clone(),
        }),
        plist::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk_plist(format!("{key}[{i}]"), v, out);
            }
        }
        plist::Value::Dictionary(dict) => {
            for (k, v) in dict {
                let key = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                walk_plist(key, v, out);
            }
        }
        _ => {}
    }
}

fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("unreadable: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "not text: invalid UTF-8".to_string())
}

/// A unit (installed at `path`, its text in `file`) and what belongs to it: its `.timer` and
/// `.path` siblings and its drop-ins (`<name>.service.d/*.conf`), whose strings count as the
/// unit's own. Its label is the installed name (an alias link names the unit).
fn read_systemd(path: &Path, file: &Path) -> Result<Parts, String> {
    let mut fields = unit_fields(&read_text(file)?, Some("Service"))?;
    for (ext, section) in [("timer", "Timer"), ("path", "Path")] {
        let sibling = path.with_extension(ext);
        if sibling.exists() {
            let text = read_text(&sibling).map_err(|e| format!("{}: {e}", sibling.display()))?;
            fields.extend(
                unit_fields(&text, Some(section))
                    .map_err(|e| format!("{}: {e}", sibling.display()))?,
            );
        }
    }
    let mut drop_in_dir = path.as_os_str().to_owned();
    drop_in_dir.push(".d");
    let (drop_ins, broken) = entries(Path::new(&drop_in_dir), |n| n.ends_with(".conf"));
    if let Some(Entry::Broken { path, why }) = broken.into_iter().next() {
        return Err(format!("{}: {why}", path.display()));
    }
    for conf in drop_ins {
        let text = read_text(&conf).map_err(|e| format!("{}: {e}", conf.display()))?;
        fields.extend(unit_fields(&text, None).map_err(|e| format!("{}: {e}", conf.display()))?);
    }
    let typed = read_unit(file)?;
    let label = path
        .file_stem()
        .map_or(typed.label, |s| s.to_string_lossy().into_owned());
    Ok((label, typed.user, fields))
}

fn excerpt(line: &str) -> String {
    let short: String = line.chars().take(40).collect();
    format!("{:?}", short)
}

/// Every `Section.Key` value of a unit file, checking that each line is a comment, a section
/// header or `Key=value` under a section, and that the `required` section is there: anything
/// else is not a unit (`read_unit` is lenient by design and would read garbage as empty).
pub(super) fn unit_fields(text: &str, required: Option<&str>) -> Result<Vec<Field>, String> {
    let mut fields = Vec::new();
    let mut section: Option<String> = None;
    let mut has_required = required.is_none();
    let mut pending = String::new();
    for (n, raw) in text.lines().enumerate() {
        let n = n + 1;
        if raw
            .chars()
            .any(|c| c.is_control() && c != '\t' && c != '\r')
        {
            return Err(format!("line {n}: control characters (binary data?)"));
        }
        let line = raw.trim();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let line = std::mem::take(&mut pending);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .ok_or_else(|| format!("line {n}: unclosed section header {}", excerpt(line)))?;
            has_required |= Some(name) == required;
            section = Some(name.to_string());
            continue;
        }
        let Some(sec) = &section else {
            return Err(format!("line {n}: {} before any [Section]", excerpt(line)));
        };
        let key_ok = |k: &str| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.@".contains(c))
        };
        match line.split_once('=') {
            Some((k, v)) if key_ok(k.trim()) => fields.push(Field {
                key: format!("{sec}.{}", k.trim()),
                text: v.trim().to_string(),
            }),
            _ => {
                return Err(format!(
                    "line {n}: {} is not a Key=value directive",
                    excerpt(line)
                ))
            }
        }
    }
    if !has_required {
        let want = required.unwrap_or_default();
        return Err(format!(
            "no [{want}] section: not a .{} unit",
            want.to_lowercase()
        ));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_fields_read_every_value_and_refuse_garbage() {
        let f = unit_fields(
            "# c\n[Unit]\nAfter=a.service\n[Service]\nExecStart=/bin/sh -c \\\n  'cd /x'\n",
            Some("Service"),
        )
        .unwrap();
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["Unit.After", "Service.ExecStart"]);
        assert_eq!(f[1].text, "/bin/sh -c  'cd /x'");
        let service = |t| unit_fields(t, Some("Service"));
        assert!(service("hello world\n").is_err());
        assert!(service("[Unit]\nDescription=x\n").is_err());
        assert!(service("[Service]\nExec\u{1}Start=x\n").is_err());
        assert!(service("ExecStart=/x\n[Service]\n").is_err());
        assert!(unit_fields("[Path]\nPathChanged=/x\n", None).is_ok());
    }
}
