//! Each crate compiles its own copy of the protos it needs (so a packaged
//! crate carries them); the files under the top-level `proto/` are the ones
//! that are edited. A copy that differs fails here.

use std::path::{Path, PathBuf};

/// Each top-level proto and the crate copy compiled from it.
const COPIES: &[(&str, &str)] = &[
    (
        "xds/data/orca/v3/orca_load_report.proto",
        "crates/orca-lb-proto/proto/xds/data/orca/v3/orca_load_report.proto",
    ),
    (
        "xds/service/orca/v3/orca.proto",
        "crates/orca-lb-proto/proto/xds/service/orca/v3/orca.proto",
    ),
    (
        "orca_lb/debug/v1/debug.proto",
        "crates/orca-lb-debug/proto/orca_lb/debug/v1/debug.proto",
    ),
    (
        "etcd/etcdserverpb/rpc.proto",
        "crates/orca-lb-etcd/proto/etcdserverpb/rpc.proto",
    ),
    (
        "etcd/mvccpb/kv.proto",
        "crates/orca-lb-etcd/proto/mvccpb/kv.proto",
    ),
    (
        "orca_lb/testing/v1/greeter.proto",
        "crates/orca-lb-testkit/proto/orca_lb/testing/v1/greeter.proto",
    ),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn every_crate_copy_matches_the_top_level_proto() {
    let root = root();
    let mut stale = Vec::new();
    for (source, copy) in COPIES {
        let source = root.join("proto").join(source);
        let copy = root.join(copy);
        if read(&source) != read(&copy) {
            stale.push(format!(
                "cp {} {}",
                source.strip_prefix(&root).unwrap().display(),
                copy.strip_prefix(&root).unwrap().display()
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "crate copies differ from proto/; after editing proto/, run:\n{}",
        stale.join("\n")
    );
}

#[test]
fn every_proto_has_exactly_one_crate_copy() {
    let root = root();
    let mut found = Vec::new();
    let mut dirs = vec![root.join("proto")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "proto") {
                let relative = path.strip_prefix(root.join("proto")).unwrap();
                found.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    let mut listed: Vec<String> = COPIES.iter().map(|(s, _)| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "every file under proto/ has a crate copy listed in tests/proto_copies.rs"
    );
}
