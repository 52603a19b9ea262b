//! Replays every committed fuzz input (`fuzz/corpus/<target>/`, the seeds and what the
//! fuzzer kept, and `fuzz/regressions/<target>/`, inputs that once crashed a target) through
//! the target bodies, so CI checks them on stable on every run; `scripts/fuzz.sh` runs the
//! fuzzer itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use mangaassist_fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_committed_input_passes_its_target() {
    for (name, target) in TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(name));
        assert!(
            corpus.len() >= 3,
            "fuzz/corpus/{name} holds {} inputs; the seeds are missing",
            corpus.len()
        );
        for path in corpus
            .iter()
            .chain(&inputs(&fuzz_dir().join("regressions").join(name)))
        {
            let data = std::fs::read(path).unwrap();
            // A panic names the input, so a CI failure can be replayed with
            // `cargo fuzz run <target> <file>`.
            eprintln!("{name}: {}", path.display());
            target(&data);
        }
    }
}

#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        let body =
            std::fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs")))
                .unwrap();
        assert!(
            body.contains(&format!("mangaassist_fuzzing::{name}")),
            "fuzz/fuzz_targets/{name}.rs does not call mangaassist_fuzzing::{name}"
        );
    }
}
