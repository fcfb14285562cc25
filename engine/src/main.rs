fn main() -> std::process::ExitCode {
    engine::main()
}
