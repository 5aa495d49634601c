//! `sqlx::migrate!` embeds the migrations when this crate compiles, and the newest of them is the
//! newest schema the data plane accepts (RELIABILITY P13). A migration added without any change
//! here must still rebuild the crate, or the data plane would refuse the schema it belongs with.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
