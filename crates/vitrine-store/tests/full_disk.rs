//! A real full disk: a store on a 3 MiB tmpfs takes commits until the file system is full. The
//! failing commit names the file and says the disk is full; nothing acknowledged is lost; the
//! store still opens and checks clean; and once there is room again the same writer commits.
//! Needs root (it mounts a tmpfs); where mounting is not allowed, set VITRINE_SKIP_MOUNT=1.

use std::path::Path;
use std::process::Command;
use vitrine_store::*;

mod model;
use model::*;

struct Mount<'a>(&'a Path);

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size: &str, remount: bool) -> bool {
    let opts = if remount {
        format!("remount,size={size}")
    } else {
        format!("size={size}")
    };
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_full_disk_fails_the_commit_by_name_loses_nothing_acknowledged_and_the_writer_recovers() {
    if std::env::var_os("VITRINE_SKIP_MOUNT").is_some() {
        eprintln!("skipped: VITRINE_SKIP_MOUNT is set");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().join("disk");
    std::fs::create_dir(&at).unwrap();
    assert!(
        mount_tmpfs(&at, "3m", false),
        "could not mount a tmpfs (this test needs root); set VITRINE_SKIP_MOUNT=1 where mounts are not allowed"
    );
    let _mounted = Mount(&at);
    let root = at.join("store");
    let w = Store::open_writer(&root).unwrap();
    let mut schema = Schema::new(DIM, Metric::Cosine).unwrap();
    schema.ensure_field("price", FieldType::Float).unwrap();
    schema.ensure_field("city", FieldType::String).unwrap();
    w.create_collection("c", schema).unwrap();
    let mut c = w.collection("c").unwrap();
    let mut model = read_state(&root).remove("c").unwrap();
    // Batches of 2,000 rows (about 170 KB of segment each) until the disk is full.
    let mut acknowledged = 0;
    let err = loop {
        let b = batch(acknowledged * 2000..(acknowledged + 1) * 2000, 0);
        match c.insert(&b) {
            Ok(_) => {
                model.rows.extend(rows_of(&b));
                acknowledged += 1;
                assert!(acknowledged < 100, "the 3 MiB disk never filled");
            }
            Err(e) => break e,
        }
    };
    assert!(acknowledged >= 3, "only {acknowledged} batches fit");
    let msg = err.to_string();
    assert!(
        msg.contains("No space left on device") && msg.contains(&*root.to_string_lossy()),
        "{msg}"
    );
    // Still full: a small commit fails the same way, and changes nothing.
    let small = batch([1_000_000], 1);
    assert!(c
        .insert(&small)
        .unwrap_err()
        .to_string()
        .contains("No space left on device"));

    // Nothing acknowledged is lost, nothing half-written is visible, every checksum matches.
    let reader = Store::open(&root).unwrap();
    assert!(reader.check("c").unwrap().problems.is_empty());
    let got = read_state(&root).remove("c").unwrap();
    let one = |c: &Coll| State::from([("c".to_string(), c.clone())]);
    assert!(
        got == model,
        "after the disk filled: {}",
        diff(&one(&got), &one(&model))
    );

    // Room again: the same writer goes on.
    assert!(mount_tmpfs(&at, "16m", true), "could not grow the tmpfs");
    c.insert(&small).unwrap();
    model.rows.extend(rows_of(&small));
    drop(c);
    drop(w);
    drop(Store::open_writer(&root).unwrap().collection("c").unwrap());
    assert_sound(&root, "after the disk had room again");
    assert!(read_state(&root).remove("c").unwrap() == model);
}
