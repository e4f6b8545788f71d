fn main() {
    eprintln!("work in progress");
    std::process::exit(1)
}
