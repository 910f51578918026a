//! The command line: global options, then an optional command and its words.
//!
//! The command's words are taken verbatim (`trailing_var_arg`) and parsed by
//! [`crate::command`], the same parser the shell uses, so `taskmasterctl tail
//! -f web` and `tail -f web` typed in the shell cannot drift apart.

use crate::connect::ConnectOptions;
use clap::Parser;
use std::path::PathBuf;

/// `taskmasterctl [-c CONFIG] [--server ADDR] [--token-file PATH] [--json] [COMMAND [ARGS...]]`
#[derive(Debug, Clone, Parser)]
#[command(
    name = "taskmasterctl",
    version,
    about = "Control taskmasterd: run one command, read commands from a pipe, or open a shell.",
    after_help = "Without a command: an interactive shell on a terminal, else one command per line from stdin.\n\
                  Type `taskmasterctl help` for the commands.\n\
                  Exit codes: 0 ok, 1 command failed, 2 usage error, 3 daemon unreachable or authentication refused."
)]
pub struct Cli {
    /// The daemon's config file; only its `server:` section is read. Default:
    /// $TASKMASTER_CONFIG, else ./taskmaster.yaml, else /etc/taskmaster/taskmaster.yaml.
    #[arg(short = 'c', long = "config", value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// Daemon address (`host:port`), instead of `server.listen`.
    #[arg(long, value_name = "ADDR")]
    pub server: Option<String>,
    /// Token file, instead of `server.token_file`.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Print one JSON document per command (also accepted after the command).
    #[arg(long)]
    pub json: bool,
    /// The command and its arguments (`status web`, `tail -f web:0`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

impl Cli {
    /// Where to find the daemon.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            config: self.config.clone(),
            server: self.server.clone(),
            token_file: self.token_file.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("taskmasterctl").chain(args.iter().copied()))
    }

    #[test]
    fn global_options_then_verbatim_command_words() -> Result<(), clap::Error> {
        let cli = parse(&["-c", "x.yaml", "--json", "tail", "-f", "-n", "3", "web"])?;
        assert_eq!(cli.config, Some(PathBuf::from("x.yaml")));
        assert!(cli.json);
        assert_eq!(cli.command, ["tail", "-f", "-n", "3", "web"]);
        let cli = parse(&["status", "--json"])?;
        assert!(!cli.json, "--json after the command is the command's");
        assert_eq!(cli.command, ["status", "--json"]);
        let cli = parse(&["--server", "127.0.0.1:1", "--token-file", "/t"])?;
        assert!(cli.command.is_empty());
        assert_eq!(cli.connect_options().server.as_deref(), Some("127.0.0.1:1"));
        Ok(())
    }

    #[test]
    fn unknown_global_option_reaches_the_command_parser_as_a_usage_error() -> Result<(), clap::Error>
    {
        // clap hands it over verbatim; `command` rejects it (exit 2).
        let cli = parse(&["--frobnicate", "status"])?;
        let e = crate::command::parse_words(&cli.command).err();
        assert!(
            e.is_some_and(|e| e.message.contains("unknown option \"--frobnicate\"")),
            "{:?}",
            cli.command
        );
        Ok(())
    }

    #[test]
    fn bad_option_value_is_a_clap_usage_error() {
        let e = parse(&["--config"]).err();
        assert_eq!(e.map(|e| e.exit_code()), Some(2));
    }
}
