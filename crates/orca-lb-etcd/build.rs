//! Compiles the etcd v3 API subset in `proto/` with protox (a pure-Rust
//! protobuf compiler), so no system `protoc` is needed. Clients only: orca-lb
//! talks to etcd, it does not serve its API.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let files = [
        root.join("mvccpb/kv.proto"),
        root.join("etcdserverpb/rpc.proto"),
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
