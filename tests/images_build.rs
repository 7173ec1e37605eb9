//! `faultline images`: a build is skipped when the image of the recipe exists, the list shows it,
//! and a missing Docker or mmdebstrap is one line saying what to install.

#[path = "cluster_support/mod.rs"]
mod cluster_support;

use std::process::Command;

use cluster_support::{docker_or_skip, ensure_image};

const BIN: &str = env!("CARGO_BIN_EXE_faultline");

/// Runs faultline with `args` and extra environment; returns (exit code, stdout, stderr).
fn faultline(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn without_docker_one_line_says_what_to_install() {
    let (code, _, err) = faultline(
        &["images", "list"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(code, 3);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("Docker is not reachable at /nonexistent/docker.sock"),
        "{err}"
    );
    assert!(err.contains("apt-get install docker.io"), "{err}");
}

#[test]
fn an_unknown_system_is_named_with_the_known_ones() {
    let (code, _, err) = faultline(&["images", "build", "--system", "cassandra"], &[]);
    assert_eq!(code, 3);
    assert!(err.contains("unknown system \"cassandra\""), "{err}");
    assert!(
        err.contains("etcd, redis, nats, rabbitmq, zookeeper, postgres"),
        "{err}"
    );
}

#[tokio::test]
async fn a_second_build_is_skipped_and_the_list_shows_the_current_image() {
    let Some(()) = docker_or_skip("images build") else {
        return;
    };
    ensure_image().await;
    let image = faultline::images::base_image_ref();
    let (code, out, err) = faultline(&["images", "build", "--system", "etcd"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{image} is up to date")), "{out}");

    let (code, out, err) = faultline(&["images", "list"], &[]);
    assert_eq!(code, 0, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&image))
        .unwrap_or_else(|| panic!("{image} not listed:\n{out}"));
    assert!(row.ends_with("current"), "{row}");
}

#[tokio::test]
async fn without_mmdebstrap_one_line_says_what_to_install() {
    let Some(()) = docker_or_skip("images build without mmdebstrap") else {
        return;
    };
    let empty = std::env::temp_dir().join(format!("fl-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, err) = faultline(
        &["images", "build", "--force", "--no-install"],
        &[("PATH", empty.to_str().unwrap())],
    );
    std::fs::remove_dir_all(&empty).unwrap();
    assert_eq!(code, 3);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("mmdebstrap is missing: install it (Debian: `apt-get install mmdebstrap`)"),
        "{err}"
    );
}
