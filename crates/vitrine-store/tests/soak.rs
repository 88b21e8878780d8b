//! A randomized soak under SIGKILL: a child process commits a mixed workload (inserts,
//! upserts, deletes by id and by selection, compaction, retention) and reports each commit
//! once it is acknowledged; the parent kills it with SIGKILL at 100 random moments. After each
//! kill: the store opens, `check` finds nothing wrong, no orphan file is left once the next
//! writer has opened it (the dead writer's lock is taken over), and the contents equal the
//! model after every acknowledged commit, or after one more (the commit in flight may have
//! landed before its acknowledgement was written). The workload is the same on both sides of
//! the process boundary: commit `i` of seed `s` is `model::op(s, i)`.

use rand::{Rng, SeedableRng};
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use vitrine_store::*;

mod model;
use model::*;

/// Small segments, so that compaction and multi-segment partitions happen often.
const SEGMENT_ROWS: usize = 16;

fn schema() -> Schema {
    let mut s = Schema::new(DIM, Metric::Cosine).unwrap();
    s.ensure_field("price", FieldType::Float).unwrap();
    s.ensure_field("city", FieldType::String).unwrap();
    s
}

/// The child: commits `op(seed, from)`, `op(seed, from + 1)`, … and prints `ack i` after each,
/// until it is killed. Run only by the soak below.
#[test]
#[ignore = "the writer process of the SIGKILL soak, started by it"]
fn soak_writer_process() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: this test is run by the soak"));
    let root = var("VITRINE_SOAK_STORE");
    let seed: u64 = var("VITRINE_SOAK_SEED").parse().unwrap();
    let from: u64 = var("VITRINE_SOAK_FROM").parse().unwrap();
    let w = Store::open_writer(&root).unwrap();
    let mut c = w.collection("c").unwrap();
    c.set_max_segment_rows(SEGMENT_ROWS);
    let mut out = std::io::stdout().lock();
    for i in from..from + 100_000 {
        execute(&mut c, &op(seed, i)).unwrap_or_else(|e| panic!("commit {i}: {e}"));
        writeln!(out, "ack {i}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn a_writer_killed_at_100_random_moments_never_loses_an_acknowledged_commit() {
    let seed: u64 = std::env::var("VITRINE_SOAK_SEED").map_or(20_261_201, |s| s.parse().unwrap());
    let rounds: usize = std::env::var("VITRINE_SOAK_ROUNDS").map_or(100, |s| s.parse().unwrap());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = scratch();
    let root = dir.path().join("store");
    Store::open_writer(&root)
        .unwrap()
        .create_collection("c", schema())
        .unwrap();
    let mut model = read_state(&root).remove("c").unwrap();
    // The store holds commits 1..=done.
    let mut done: u64 = 0;
    let (mut acked_total, mut in_flight_landed, mut rows_checked, mut interrupted) = (0u64, 0u64, 0usize, 0usize);
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "soak_writer_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("VITRINE_SOAK_STORE", &root)
            .env("VITRINE_SOAK_SEED", seed.to_string())
            .env("VITRINE_SOAK_FROM", (done + 1).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The moment: after a random number of acknowledged commits (0..40), then a random
        // 0..3 ms into the next one.
        let wait_acks = rng.random_range(0..40);
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked: Vec<u64> = Vec::new();
        while acked.len() < wait_acks {
            match lines.next() {
                Some(Ok(l)) => acked.extend(ack(&l)),
                _ => panic!("round {round}: the writer ended by itself: {:?}", child.wait()),
            }
        }
        std::thread::sleep(std::time::Duration::from_micros(rng.random_range(0..3_000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acknowledgements written before the kill are still in the pipe.
        for l in lines.map_while(|l| l.ok()) {
            acked.extend(ack(&l));
        }
        let expect_from = done + 1;
        for (k, a) in acked.iter().enumerate() {
            assert_eq!(
                *a,
                expect_from + k as u64,
                "round {round}: acknowledgements out of order"
            );
        }
        let last = done + acked.len() as u64;
        for i in done + 1..=last {
            apply(&mut model, &op(seed, i));
        }
        acked_total += acked.len() as u64;

        // Files no manifest names: the kill interrupted a commit.
        interrupted += usize::from(unpublished(&root) > 0);
        // The next writer takes the dead one's lock over and clears its leftovers.
        drop(Store::open_writer(&root).unwrap().collection("c").unwrap());
        let context = format!("seed {seed}, round {round}, killed after commit {last}");
        assert_sound(&root, &context);
        let got = read_state(&root).remove("c").unwrap();
        if got == model {
            done = last;
        } else {
            // The commit in flight landed before its acknowledgement was printed.
            let mut next = model.clone();
            apply(&mut next, &op(seed, last + 1));
            assert!(
                got == next,
                "{context}: the store is neither after commit {last} nor after {}: against {last} {}; against {} {}",
                last + 1,
                diff_coll(&got, &model),
                last + 1,
                diff_coll(&got, &next)
            );
            model = next;
            done = last + 1;
            in_flight_landed += 1;
        }
        rows_checked += got.rows.len();
    }
    eprintln!(
        "SIGKILL soak (seed {seed}): {rounds} kills, {interrupted} of them mid-commit (files on disk that no manifest \
         names); {done} commits in the store ({acked_total} acknowledged, {in_flight_landed} landed \
         unacknowledged), {rows_checked} rows checked after kills, 0 lost; {} live rows at the end",
        model.rows.len()
    );
}

/// Files in `segments/` that the manifest does not name.
fn unpublished(root: &std::path::Path) -> usize {
    let snap = Store::open(root).unwrap().snapshot("c").unwrap();
    let named =
        snap.manifest().segments.len() + snap.manifest().segments.iter().filter(|e| e.deletes.is_some()).count();
    files(root).len() - named
}

/// The commit number a line of the writer acknowledges (libtest may print before it).
fn ack(line: &str) -> Option<u64> {
    line.split_once("ack ").map(|(_, n)| n.trim().parse().unwrap())
}

fn diff_coll(got: &Coll, want: &Coll) -> String {
    let one = |c: &Coll| std::collections::BTreeMap::from([("c".to_string(), c.clone())]);
    diff(&one(got), &one(want))
}
