use clap::Parser;

fn main() {
    let cli = bitprop::cli::Cli::parse();
    if let Err(e) = bitprop::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
