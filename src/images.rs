//! Images built here, from Debian packages only: `mmdebstrap` makes a bookworm root file system
//! from the machine's own apt sources and streams it as a tar straight into the Docker Engine's
//! import (`POST /images/create?fromSrc=-`), so neither a registry nor the docker CLI is involved.
//!
//! There is one image, `faultline/base`, holding every system under test and the fault tools.
//! Per-system config goes into containers when they are created (see `cluster`), which keeps
//! the build to one step, lets a config change take effect without a rebuild, and lets a run add
//! files (the faultline binary for helper roles) the same way.
//!
//! The recipe is `docker/base/packages.txt` + `docker/base/mmdebstrap.args` (compiled into the
//! binary) plus the import changes below. Its hash is the image tag, so a build is skipped when
//! the tagged image exists and an edited recipe builds a new image; `faultline/base:latest`
//! follows the newest build for people. The code always runs the image of its own recipe.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bollard::query_parameters::{
    CreateImageOptions, ListImagesOptions, RemoveImageOptions, TagImageOptions,
};
use bollard::Docker;
use futures_util::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use tokio::io::AsyncBufReadExt;

/// Repository of the base image.
pub const BASE_REPO: &str = "faultline/base";
/// Repository of users' systems' images: the base recipe plus their Debian packages.
pub const SYSTEM_REPO: &str = "faultline/system";
/// The tag that follows the newest build.
pub const STABLE_TAG: &str = "latest";
/// Debian release the image is made from.
pub const SUITE: &str = "bookworm";
/// Bump to force a rebuild when the build steps (not the recipe files) change.
const RECIPE_FORMAT: &str = "faultline-base-v1";

const PACKAGES_TXT: &str = include_str!("../docker/base/packages.txt");
const MMDEBSTRAP_ARGS: &str = include_str!("../docker/base/mmdebstrap.args");
/// Dockerfile-like changes applied at import.
const IMPORT_CHANGES: &[&str] = &["ENV LANG=C.UTF-8", "CMD [\"/bin/bash\"]"];

/// Longest a build (mmdebstrap streaming into the import) may take.
const IMPORT_TIMEOUT_S: u64 = 3600;
/// Stderr lines of mmdebstrap kept for an error message.
const ERROR_TAIL_LINES: usize = 20;

/// The base image recipe as compiled into this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// `faultline/base`, or `faultline/system` for the base plus a user's packages.
    pub repo: &'static str,
    pub packages: Vec<String>,
    pub mmdebstrap_args: Vec<String>,
    /// First 12 hex digits of the SHA-256 of everything above plus the import changes.
    pub hash: String,
}

fn lines_of(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Options lines may hold a '#' inside a value; only whole-line comments are dropped.
fn option_lines_of(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

impl Recipe {
    pub fn current() -> Recipe {
        Recipe::from_parts(PACKAGES_TXT, MMDEBSTRAP_ARGS)
    }

    fn from_parts(packages: &str, args: &str) -> Recipe {
        let packages = lines_of(packages);
        let mmdebstrap_args = option_lines_of(args);
        let mut h = Sha256::new();
        for part in [RECIPE_FORMAT, SUITE]
            .into_iter()
            .map(String::from)
            .chain(packages.iter().cloned())
            .chain(std::iter::once("--".to_string()))
            .chain(mmdebstrap_args.iter().cloned())
            .chain(std::iter::once("--".to_string()))
            .chain(IMPORT_CHANGES.iter().map(|s| s.to_string()))
        {
            h.update(part.as_bytes());
            h.update(b"\n");
        }
        let hash: String = h
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()[..12]
            .to_string();
        Recipe {
            repo: BASE_REPO,
            packages,
            mmdebstrap_args,
            hash,
        }
    }

    /// This recipe plus `extra` Debian packages (a user's `system.packages`), as an image of
    /// `faultline/system` tagged with the hash of the whole recipe: the same packages (in any
    /// order) on the same base share one image, and a new base recipe makes a new one.
    pub fn with_packages(&self, extra: &[String]) -> Recipe {
        let mut extra: Vec<String> = extra.to_vec();
        extra.sort();
        extra.dedup();
        let mut h = Sha256::new();
        h.update(self.hash.as_bytes());
        for p in &extra {
            h.update(b"\n");
            h.update(p.as_bytes());
        }
        let hash: String = h
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()[..12]
            .to_string();
        let mut packages = self.packages.clone();
        packages.extend(extra.into_iter().filter(|p| !self.packages.contains(p)));
        Recipe {
            repo: SYSTEM_REPO,
            packages,
            mmdebstrap_args: self.mmdebstrap_args.clone(),
            hash,
        }
    }

    pub fn image_ref(&self) -> String {
        format!("{}:{}", self.repo, self.hash)
    }
}

/// `faultline/base:<hash of this binary's recipe>`: the image every system runs.
pub fn base_image_ref() -> String {
    Recipe::current().image_ref()
}

/// Whether an image (by reference) exists locally.
pub async fn image_exists(docker: &Docker, image: &str) -> Result<bool> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(e) if crate::cluster::docker::is_not_found(&e) => Ok(false),
        Err(e) => Err(anyhow!("inspecting image {image}: {e}")),
    }
}

/// Fails with the command that makes the image when it is missing (nothing is ever pulled).
pub async fn require_image(docker: &Docker, image: &str) -> Result<()> {
    if image_exists(docker, image).await? {
        return Ok(());
    }
    if image.starts_with(BASE_REPO) {
        bail!("image {image} does not exist yet: run `faultline images build` (it is built from Debian packages, nothing is pulled)")
    }
    bail!("image {image} does not exist locally and faultline never pulls images")
}

/// How `faultline images build` behaves.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Build even when the image of this recipe exists.
    pub force: bool,
    /// apt sources files to use instead of the machine's own (sources.list or deb822).
    pub sources: Vec<PathBuf>,
    /// When mmdebstrap is missing and we are root, install it with apt-get.
    pub install_missing: bool,
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub image: String,
    /// False when the image existed already.
    pub built: bool,
    pub build_seconds: f64,
    pub size_bytes: i64,
}

/// Builds the base image unless the image of this recipe exists (or `force`).
pub async fn build_base(docker: &Docker, opts: &BuildOptions) -> Result<BuildOutcome> {
    build_recipe(docker, &Recipe::current(), opts).await
}

/// Builds the image of `recipe` unless it exists (or `force`); the base image also moves the
/// `latest` tag.
pub async fn build_recipe(
    docker: &Docker,
    recipe: &Recipe,
    opts: &BuildOptions,
) -> Result<BuildOutcome> {
    let repo = recipe.repo;
    let image = recipe.image_ref();
    if !opts.force && image_exists(docker, &image).await? {
        let size = image_size(docker, &image).await?;
        return Ok(BuildOutcome {
            image,
            built: false,
            build_seconds: 0.0,
            size_bytes: size,
        });
    }
    let t0 = Instant::now();
    let progress = Progress::new();
    let mmdebstrap = find_or_install_mmdebstrap(opts.install_missing, &progress).await?;
    let sources = if opts.sources.is_empty() {
        machine_apt_sources(Path::new("/etc/apt"), SUITE)?
    } else {
        opts.sources.clone()
    };
    progress.step(&format!(
        "building {image} with mmdebstrap ({SUITE}, {} packages, apt sources: {})",
        recipe.packages.len(),
        sources
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let building_tag = format!("building-{}", recipe.hash);
    let result =
        stream_rootfs_into_docker(&mmdebstrap, recipe, &sources, &building_tag, &progress).await;
    let building_ref = format!("{repo}:{building_tag}");
    if let Err(e) = result {
        progress.finish();
        let _ = untag(docker, &building_ref).await;
        return Err(e);
    }
    let tags = match repo == BASE_REPO {
        true => vec![recipe.hash.as_str(), STABLE_TAG],
        false => vec![recipe.hash.as_str()],
    };
    for tag in tags {
        docker
            .tag_image(
                &building_ref,
                Some(TagImageOptions {
                    repo: Some(repo.to_string()),
                    tag: Some(tag.to_string()),
                }),
            )
            .await
            .with_context(|| format!("tagging {building_ref} as {repo}:{tag}"))?;
    }
    untag(docker, &building_ref).await?;
    progress.finish();
    Ok(BuildOutcome {
        size_bytes: image_size(docker, &image).await?,
        image,
        built: true,
        build_seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Builds the base image if it is missing, saying so; returns its reference. For commands that
/// build on first use.
/// Concurrent callers (parallel test processes, two runs) take a file lock, so the image is
/// built once and the others wait for it.
pub async fn ensure_base(docker: &Docker) -> Result<String> {
    let image = base_image_ref();
    if image_exists(docker, &image).await? {
        return Ok(image);
    }
    let lock_path = build_lock_path()?;
    let lock = open_lock(&lock_path)?;
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|_| lock))
        .await?
        .with_context(|| format!("locking {}", lock_path.display()))?;
    if image_exists(docker, &image).await? {
        return Ok(image);
    }
    eprintln!("faultline: image {image} is missing; building it now (once)");
    let out = build_base(
        docker,
        &BuildOptions {
            install_missing: true,
            ..Default::default()
        },
    )
    .await?;
    eprintln!(
        "faultline: built {} in {:.1} s ({})",
        out.image,
        out.build_seconds,
        human_size(out.size_bytes)
    );
    drop(lock);
    Ok(out.image)
}

/// Where the build lock lives: a folder of faultline's own, private to the user, in the
/// runtime directory (`$XDG_RUNTIME_DIR`, or `/run` for root) or else `~/.cache`; never a fixed
/// name in the world-writable temp dir, where another user could plant a link.
fn build_lock_path() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let base = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None if root => PathBuf::from("/run"),
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache"))
            .ok_or_else(|| {
                anyhow!(
                    "neither XDG_RUNTIME_DIR nor HOME is set: nowhere to put the image build lock"
                )
            })?,
    };
    let dir = base.join("faultline");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir.join("images.lock"))
}

/// Opens (or creates) the lock file without truncating it and without following a symlink.
fn open_lock(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("opening the image build lock {}", path.display()))
}

/// The image a user's `[system]` table runs on, built first when it is the base image plus
/// packages and missing (under the same lock as the base image). A local image must exist:
/// nothing is pulled. Errors are one line naming the key; a package apt cannot install is
/// reported with apt's own line.
pub async fn ensure_system_image(
    docker: &Docker,
    source: &crate::cluster::user::ImageSource,
) -> Result<String> {
    use crate::cluster::user::ImageSource;
    match source {
        ImageSource::Base => ensure_base(docker).await,
        ImageSource::Local(image) => {
            if image_exists(docker, image).await? {
                Ok(image.clone())
            } else {
                bail!("system.image: {image} does not exist locally, and faultline never pulls images: build or load it first (docker build -t {image} ...)")
            }
        }
        ImageSource::BasePlus(packages) => {
            let recipe = Recipe::current().with_packages(packages);
            let image = recipe.image_ref();
            if image_exists(docker, &image).await? {
                return Ok(image);
            }
            let lock_path = build_lock_path()?;
            let lock = open_lock(&lock_path)?;
            let lock = tokio::task::spawn_blocking(move || lock.lock().map(|_| lock))
                .await?
                .with_context(|| format!("locking {}", lock_path.display()))?;
            eprintln!(
                "faultline: building {image}: the base image plus {} (once; later runs reuse it)",
                packages.join(", ")
            );
            let built = build_recipe(
                docker,
                &recipe,
                &BuildOptions {
                    install_missing: true,
                    ..Default::default()
                },
            )
            .await;
            drop(lock);
            match built {
                Ok(out) => Ok(out.image),
                Err(e) => {
                    let text = format!("{e:#}");
                    match apt_error_line(&text) {
                        Some(line) => bail!(
                            "system.packages: {} cannot be installed: {line}",
                            packages.join(", ")
                        ),
                        None => Err(e.context(format!("system.packages: building {image}"))),
                    }
                }
            }
        }
    }
}

/// apt's own error line (`E: Unable to locate package ...`) in a build's output, if any.
pub fn apt_error_line(output: &str) -> Option<String> {
    output
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("E: ") && !l.contains("mmdebstrap") && !l.contains("apt-get --yes"))
        .or_else(|| output.lines().map(str::trim).find(|l| l.starts_with("E: ")))
        .map(str::to_string)
}

async fn untag(docker: &Docker, image: &str) -> Result<()> {
    docker
        .remove_image(
            image,
            Some(RemoveImageOptions {
                noprune: true,
                ..Default::default()
            }),
            None,
        )
        .await
        .map(|_| ())
        .or_else(|e| {
            if crate::cluster::docker::is_not_found(&e) {
                Ok(())
            } else {
                Err(anyhow!("removing tag {image}: {e}"))
            }
        })
}

async fn image_size(docker: &Docker, image: &str) -> Result<i64> {
    Ok(docker.inspect_image(image).await?.size.unwrap_or(0))
}

/// mmdebstrap writes the root file system as a tar to its stdout; that stream is the body of the
/// Engine's import. A build counts only if mmdebstrap exits 0 (a truncated tar would import).
async fn stream_rootfs_into_docker(
    mmdebstrap: &Path,
    recipe: &Recipe,
    sources: &[PathBuf],
    tag: &str,
    progress: &Progress,
) -> Result<()> {
    let mut cmd = tokio::process::Command::new(mmdebstrap);
    cmd.args(&recipe.mmdebstrap_args)
        .arg(format!("--include={}", recipe.packages.join(",")))
        .arg(SUITE)
        .arg("-")
        .args(sources)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // mmdebstrap signals its own process group when it cleans up: give it one of its own
        // so that the controller is not hung up with it.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {}", mmdebstrap.display()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let tail: Arc<Mutex<Vec<String>>> = Arc::default();
    let tail_w = tail.clone();
    let spinner = progress.bar.clone();
    let stderr_task = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            spinner.set_message(line.trim_start_matches("I: ").to_string());
            let mut t = tail_w.lock().expect("tail lock");
            t.push(line);
            let excess = t.len().saturating_sub(ERROR_TAIL_LINES);
            t.drain(..excess);
        }
    });
    let body = tokio_util::io::ReaderStream::new(stdout);
    // The import request lasts as long as mmdebstrap runs: it needs a client whose request
    // timeout is that long, not the default two minutes.
    let importer = crate::cluster::docker::connect_with_timeout(IMPORT_TIMEOUT_S)?;
    let import = importer
        .create_image(
            Some(CreateImageOptions {
                from_src: Some("-".into()),
                repo: Some(recipe.repo.into()),
                tag: Some(tag.into()),
                changes: IMPORT_CHANGES
                    .iter()
                    .map(|s| s.to_string())
                    .chain([
                        "LABEL faultline=1".to_string(),
                        format!("LABEL faultline.recipe={}", recipe.hash),
                    ])
                    .collect(),
                ..Default::default()
            }),
            Some(bollard::body_try_stream(body)),
            None,
        )
        .try_collect::<Vec<_>>()
        .await;
    let status = child.wait().await.context("waiting for mmdebstrap")?;
    let _ = stderr_task.await;
    let tail = tail.lock().expect("tail lock").join("\n");
    if !status.success() {
        bail!("mmdebstrap failed ({status}); its last lines:\n{tail}");
    }
    import.map_err(|e| anyhow!("docker import of the root file system failed: {e}"))?;
    progress.step("imported into Docker");
    Ok(())
}

/// mmdebstrap on PATH, or installed with apt-get when allowed and running as root, or an error
/// saying in one line what to install.
async fn find_or_install_mmdebstrap(install: bool, progress: &Progress) -> Result<PathBuf> {
    if let Some(p) = which("mmdebstrap") {
        return Ok(p);
    }
    if !(install && is_root()) {
        bail!("mmdebstrap is missing: install it (Debian: `apt-get install mmdebstrap`), then run `faultline images build` again");
    }
    progress.step("mmdebstrap is missing; installing it with apt-get (running as root)");
    let install = || async {
        tokio::process::Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "mmdebstrap",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .await
    };
    let mut out = install().await.context("running apt-get")?;
    if !out.status.success() {
        let update = tokio::process::Command::new("apt-get")
            .args(["update", "-q"])
            .stdin(Stdio::null())
            .output()
            .await
            .context("running apt-get update")?;
        if update.status.success() {
            out = install().await.context("running apt-get")?;
        }
    }
    if !out.status.success() {
        bail!(
            "installing mmdebstrap with apt-get failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    which("mmdebstrap").ok_or_else(|| anyhow!("apt-get installed mmdebstrap but it is not on PATH"))
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The machine's apt sources files that serve `suite` (a sources.list or a deb822 .sources file
/// naming it), in apt's order. mmdebstrap pastes each into the new system's sources, so the image
/// is built from whatever mirror this machine is set up with.
pub fn machine_apt_sources(etc_apt: &Path, suite: &str) -> Result<Vec<PathBuf>> {
    let mut candidates = vec![etc_apt.join("sources.list")];
    let dir = etc_apt.join("sources.list.d");
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources"))
            .collect();
        files.sort();
        candidates.extend(files);
    }
    let found: Vec<PathBuf> = candidates
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .map(|t| serves_suite(&t, suite))
                .unwrap_or(false)
        })
        .collect();
    if found.is_empty() {
        bail!(
            "no apt sources for {suite} under {}: faultline builds its image from this machine's Debian {suite} sources (pass --sources FILE to name one)",
            etc_apt.display()
        );
    }
    Ok(found)
}

/// Whether an apt sources text (one-line or deb822) has an active entry for `suite`.
fn serves_suite(text: &str, suite: &str) -> bool {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .any(|l| {
            let one_line = (l.starts_with("deb ") || l.starts_with("deb\t"))
                && l.split_whitespace().any(|w| w == suite);
            let deb822 = l
                .strip_prefix("Suites:")
                .is_some_and(|s| s.split_whitespace().any(|w| w == suite));
            one_line || deb822
        })
}

/// One image faultline made.
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub reference: String,
    pub id: String,
    pub size_bytes: i64,
    pub created_unix: i64,
    /// The image of this binary's recipe.
    pub current: bool,
}

/// Images labeled `faultline=1`, one row per tag.
pub async fn list(docker: &Docker) -> Result<Vec<ImageRow>> {
    let current = base_image_ref();
    let images = docker
        .list_images(Some(ListImagesOptions {
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![crate::cluster::docker::LABEL_FAULTLINE.to_string()],
            )])),
            ..Default::default()
        }))
        .await
        .context("listing images")?;
    let mut rows = vec![];
    for img in images {
        let current_id = img.repo_tags.contains(&current);
        let tags = if img.repo_tags.is_empty() {
            vec!["<untagged>".to_string()]
        } else {
            img.repo_tags.clone()
        };
        for t in tags {
            rows.push(ImageRow {
                reference: t,
                id: img
                    .id
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect(),
                size_bytes: img.size,
                created_unix: img.created,
                current: current_id,
            });
        }
    }
    rows.sort_by(|a, b| {
        b.created_unix
            .cmp(&a.created_unix)
            .then(a.reference.cmp(&b.reference))
    });
    Ok(rows)
}

/// "1.0 GB", "230 MB".
pub fn human_size(bytes: i64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else {
        format!("{:.0} MB", b / 1e6)
    }
}

/// Step lines (always printed, on stderr) and, on a terminal, a spinner with the elapsed time
/// and the latest thing mmdebstrap said. Off a terminal (a CI log) the spinner is hidden, and
/// a plain line repeats the latest thing said every [`PLAIN_PROGRESS_INTERVAL_S`], so a
/// minutes-long build is never silent.
struct Progress {
    bar: ProgressBar,
    t0: Instant,
    tty: bool,
    /// Stops the plain-line task when the build ends.
    plain: Option<tokio::task::JoinHandle<()>>,
}

/// How often the current build step is repeated when stderr is not a terminal.
const PLAIN_PROGRESS_INTERVAL_S: u64 = 10;
/// Bound on the plain-line task (a build never takes a day).
const PLAIN_PROGRESS_LINES_MAX: u64 = 24 * 3600 / PLAIN_PROGRESS_INTERVAL_S;

impl Progress {
    fn new() -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = if tty {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .expect("a valid template"),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        } else {
            ProgressBar::hidden()
        };
        let t0 = Instant::now();
        // The hidden bar still holds the latest message; a plain line repeats it.
        let plain = (!tty && tokio::runtime::Handle::try_current().is_ok()).then(|| {
            let bar = bar.clone();
            tokio::spawn(async move {
                for _ in 0..PLAIN_PROGRESS_LINES_MAX {
                    tokio::time::sleep(Duration::from_secs(PLAIN_PROGRESS_INTERVAL_S)).await;
                    let step = bar.message();
                    let step = if step.is_empty() { "working" } else { &step };
                    eprintln!("{}", plain_line(t0.elapsed(), step));
                }
            })
        });
        Progress {
            bar,
            t0,
            tty,
            plain,
        }
    }

    fn step(&self, what: &str) {
        self.bar.set_message(what.to_string());
        let line = format!("[{:6.1} s] {what}", self.t0.elapsed().as_secs_f64());
        if self.tty {
            self.bar.suspend(|| eprintln!("{line}"));
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
        if let Some(t) = &self.plain {
            t.abort();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// One progress line for a log: elapsed time and the current build step.
fn plain_line(elapsed: Duration, step: &str) -> String {
    format!("[{:6.1} s] building: {step}", elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_lock_is_private_kept_and_never_a_followed_link() {
        use std::os::unix::fs::PermissionsExt;
        let path = build_lock_path().unwrap();
        assert!(
            !path.starts_with(std::env::temp_dir()),
            "{}",
            path.display()
        );
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o077, 0, "private folder: {dir_mode:o}");
        // Not truncated: what is in the file stays.
        let dir = std::env::temp_dir().join(format!("faultline-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lock = dir.join("images.lock");
        std::fs::write(&lock, "kept").unwrap();
        drop(open_lock(&lock).unwrap());
        assert_eq!(std::fs::read_to_string(&lock).unwrap(), "kept");
        // A symlink in its place is refused, and its target untouched.
        let target = dir.join("target");
        std::fs::write(&target, "victim").unwrap();
        let link = dir.join("link.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(open_lock(&link).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "victim");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn off_a_terminal_the_latest_build_step_is_what_the_periodic_line_repeats() {
        if std::io::stderr().is_terminal() {
            return; // the spinner case; the tests run with stderr captured
        }
        let progress = Progress::new();
        assert!(progress.plain.is_some(), "a periodic line off a terminal");
        progress.step("resolving packages");
        progress.bar.set_message("I: downloading packages...");
        let step = progress.bar.message();
        assert_eq!(
            plain_line(Duration::from_secs(20), &step),
            "[  20.0 s] building: I: downloading packages..."
        );
        progress.finish();
        tokio::task::yield_now().await;
        assert!(progress.plain.as_ref().unwrap().is_finished() || progress.bar.is_finished());
    }

    #[test]
    fn a_system_image_is_the_base_recipe_plus_packages_hashed_in_any_order() {
        let base = Recipe::current();
        let a = base.with_packages(&["python3".into(), "perl".into()]);
        let b = base.with_packages(&["perl".into(), "python3".into(), "perl".into()]);
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, base.with_packages(&["python3".into()]).hash);
        assert!(a.image_ref().starts_with("faultline/system:"));
        assert!(a.packages.starts_with(&base.packages));
        assert!(a
            .packages
            .ends_with(&["perl".to_string(), "python3".to_string()]));
    }

    #[test]
    fn apts_own_line_is_picked_from_a_failed_build() {
        let out = "I: running apt-get update...\nE: Unable to locate package pyhton3\nE: apt-get --yes install failed\nE: mmdebstrap failed";
        assert_eq!(
            apt_error_line(out).as_deref(),
            Some("E: Unable to locate package pyhton3")
        );
        assert_eq!(apt_error_line("I: all good"), None);
    }

    #[test]
    fn the_recipe_hash_follows_packages_and_options_but_not_comments() {
        let a = Recipe::from_parts("etcd-server\nredis-server\n", "--variant=apt\n");
        let b = Recipe::from_parts(
            "# systems\netcd-server  # the kv store\n\nredis-server\n",
            "# comment\n--variant=apt\n",
        );
        let c = Recipe::from_parts("etcd-server\n", "--variant=apt\n");
        let d = Recipe::from_parts("etcd-server\nredis-server\n", "--variant=minbase\n");
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, c.hash);
        assert_ne!(a.hash, d.hash);
        assert_eq!(a.hash.len(), 12);
        assert_eq!(a.image_ref(), format!("faultline/base:{}", a.hash));
    }

    #[test]
    fn the_shipped_recipe_holds_every_system_and_the_fault_tools() {
        let r = Recipe::current();
        for p in [
            "etcd-server",
            "etcd-client",
            "redis-server",
            "redis-sentinel",
            "nats-server",
            "rabbitmq-server",
            "zookeeper",
            "postgresql",
            "iptables",
            "iproute2",
            "libfaketime",
            "procps",
        ] {
            assert!(r.packages.iter().any(|x| x == p), "{p} missing");
        }
        assert!(r
            .mmdebstrap_args
            .contains(&"--aptopt=Acquire::Languages \"none\"".to_string()));
    }

    #[test]
    fn apt_sources_are_found_in_both_formats_and_other_suites_are_skipped() {
        let dir = std::env::temp_dir().join(format!("fl-apt-{}", std::process::id()));
        let d = dir.join("sources.list.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(dir.join("sources.list"), "# deb http://x bookworm main\n").unwrap();
        std::fs::write(
            d.join("debian.sources"),
            "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n",
        )
        .unwrap();
        std::fs::write(d.join("other.list"), "deb http://x.invalid/ trixie main\n").unwrap();
        std::fs::write(
            d.join("extra.list"),
            "deb [arch=amd64] http://y.invalid/ bookworm main\n",
        )
        .unwrap();
        std::fs::write(
            d.join("old.list.disabled"),
            "deb http://z.invalid/ bookworm main\n",
        )
        .unwrap();
        let found = machine_apt_sources(&dir, "bookworm").unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["debian.sources", "extra.list"]);
        let e = machine_apt_sources(&dir, "buster").unwrap_err();
        assert!(e.to_string().contains("no apt sources for buster"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(1_020_925_440), "1.0 GB");
        assert_eq!(human_size(230_000_000), "230 MB");
    }
}
