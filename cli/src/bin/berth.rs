fn main() {
    berth_cli::berth::main()
}
