//! refinery embeds `schema/` at compile time; a new migration file must
//! trigger a rebuild (refinery#309).
fn main() {
    println!("cargo:rerun-if-changed=../schema");
}
