//! Tier 3: installing a new build while a server that preloads pgclone runs
//! (what every upgrade and every scripts/ run does) leaves that server and
//! its sessions up, and new sessions and background workers still work.

mod common;
use common::*;
use std::process::Command;

#[test]
fn reinstall_under_a_running_server_keeps_it_up() {
    let env = env();
    empty_target(&env, "install_t");
    // A session that uses the library before, and must survive, the install.
    let mut before = env.client(env.tgt_port, "install_t");
    let pid: i32 = before
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let v: String = before
        .query_one("SELECT pgclone.version()", &[])
        .unwrap()
        .get(0);
    let log = std::env::var("PGCLONE_IT_TGT_LOG").expect("PGCLONE_IT_TGT_LOG");
    let log_before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) as usize;
    // The library file a running server has mapped must never be written
    // over: a new build has to arrive as a new file (a new inode), or the
    // processes mapping the old one run changed code and crash (a same-build
    // reinstall would hide that, so the inode is what is checked).
    let libdir = String::from_utf8(
        Command::new("pg_config")
            .arg("--pkglibdir")
            .output()
            .expect("pg_config")
            .stdout,
    )
    .unwrap();
    let lib = format!("{}/pgclone.so", libdir.trim());
    let inode = |p: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).map(|m| m.ino()).unwrap_or(0)
    };
    let ino_before = inode(&lib);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-ext.sh");
    let out = Command::new(script).output().expect("install-ext.sh");
    assert!(
        out.status.success(),
        "install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        inode(&lib),
        ino_before,
        "the library was written over in place, under the running server"
    );
    // Give a crash (and the postmaster's reset of every session) time to show.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let still: i32 = before
        .query_one("SELECT pg_backend_pid()", &[])
        .expect("the session from before the install was lost")
        .get(0);
    assert_eq!(still, pid);
    // The session goes on using pgclone.
    let jobs: String = before
        .query_one("SELECT pgclone.jobs()", &[])
        .unwrap()
        .get(0);
    assert!(jobs.starts_with('['), "{jobs}");
    let mut after = env.client(env.tgt_port, "install_t");
    let v2: String = after
        .query_one("SELECT pgclone.version()", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, v2);
    let text = std::fs::read(&log).unwrap_or_default();
    let since = String::from_utf8_lossy(text.get(log_before..).unwrap_or_default());
    assert!(
        !since.contains("was terminated by signal"),
        "a server process crashed: see {log}"
    );
}
