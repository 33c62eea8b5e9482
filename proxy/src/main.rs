//! The `duet` binary: a thin shell over [`duet::cli`].

fn main() -> std::process::ExitCode {
    duet::cli::main()
}
