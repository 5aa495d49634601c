//! `gatehouse`: see the library for what it does and its exit codes.

fn main() -> std::process::ExitCode {
    gatehouse_cli::main()
}
