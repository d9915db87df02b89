// Generates the protocol's Rust types from ../proto/casino.proto (the
// gateway's wire contract) with protoc (installed by ops/lib/setup.sh when
// missing).
fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=../proto/casino.proto");
    prost_build::Config::new().compile_protos(&["../proto/casino.proto"], &["../proto"])
}
