//! `faultline init NAME`: a folder to start testing one's own system from, which runs as it is.
//!
//! It holds a plan with a `[system]` table, a client skeleton in Python speaking the client
//! protocol, and the example store of `examples/pykv` as the system to replace. Starting from
//! something that passes (`faultline run --plan NAME/plan.toml` exits 0) means every later
//! failure is about the user's change, not the scaffolding. The texts are compiled in, so the
//! skeleton always matches the binary's protocol and table keys.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

const PLAN: &str = include_str!("init/plan.toml");
const CLIENT: &str = include_str!("init/client.py");
const STORE: &str = include_str!("../examples/pykv/store.py");

/// Writes `<parent>/<name>/{plan.toml, client.py, store.py}` and returns the plan's path. Refuses
/// a bad name and an existing folder (nothing is overwritten).
pub fn write_skeleton(parent: &Path, name: &str) -> Result<PathBuf> {
    let valid = !name.is_empty()
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        bail!("NAME: {name:?} must be letters, digits and dashes (it names the folder and the system)");
    }
    if crate::plan::SYSTEMS.contains(&name) || name.starts_with("memory") {
        bail!("NAME: {name:?} is a system faultline ships; give yours another name");
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{}: already exists; faultline init writes a new folder and overwrites nothing",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = [
        ("plan.toml", PLAN.replace("NAME", name), 0o644),
        ("client.py", CLIENT.to_string(), 0o755),
        ("store.py", STORE.to_string(), 0o755),
    ];
    for (file, text, mode) in files {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("setting the mode of {}", path.display()))?;
        }
    }
    Ok(dir.join("plan.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skeleton_is_a_valid_plan_and_nothing_is_overwritten() {
        let parent = std::env::temp_dir().join(format!("faultline-init-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&parent);
        let plan_path = write_skeleton(&parent, "mykv").unwrap();
        let file = crate::plan::PlanFile::load(&plan_path).unwrap();
        let mut plan = crate::plan::Plan::default();
        file.apply(&mut plan, "plan.toml").unwrap();
        plan.plan_file = Some(plan_path.display().to_string());
        plan.validate().unwrap();
        crate::run::check_workload(&plan).unwrap();
        assert_eq!(plan.system, "mykv");
        assert_eq!(plan.name, "mykv");
        let def = plan.system_def.unwrap();
        assert_eq!(def.client, ["python3", "client.py"]);
        let e = write_skeleton(&parent, "mykv").unwrap_err().to_string();
        assert!(
            e.ends_with(
                "already exists; faultline init writes a new folder and overwrites nothing"
            ),
            "{e}"
        );
        assert!(write_skeleton(&parent, "etcd").is_err());
        assert!(write_skeleton(&parent, "my kv").is_err());
        std::fs::remove_dir_all(&parent).unwrap();
    }
}
