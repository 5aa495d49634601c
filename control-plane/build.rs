// `sqlx::migrate!` embeds migrations/ at compile time; without this, adding a migration would not
// rebuild the control plane (the macro cannot tell Cargo about the directory on stable Rust).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
