fn main() {
    eprintln!("duet-bench: not built yet");
    std::process::exit(2);
}
