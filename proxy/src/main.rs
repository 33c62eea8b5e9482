//! The `duet` binary: a thin shell over [`duet_proxy::cli`].

fn main() -> std::process::ExitCode {
    duet_proxy::cli::main()
}
