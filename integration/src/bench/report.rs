//! Results: one machine-readable JSON line per figure as it is measured
//! (stdout), and at the end the Markdown table of the issue, one row per
//! scenario: taskmaster's figure, supervisord's, the ratio, our target, met?
//!
//! Every JSON line carries `scenario`, `impl` and the 1-minute load average
//! at the time (`load1`), since two shared cores make figures taken while
//! others compile noisy; a failed measurement carries `error` instead of
//! figures.

use super::Impl;
use super::scenarios::Params;
use serde_json::{Map, Value, json};

/// One recorded figure set.
#[derive(Debug, Clone)]
pub struct Record {
    pub scenario: String,
    pub who: Impl,
    pub result: Result<Map<String, Value>, String>,
}

/// Collects records and prints each as a JSON line when it arrives.
#[derive(Debug, Default)]
pub struct Recorder {
    pub records: Vec<Record>,
}

impl Recorder {
    pub fn ok(&mut self, scenario: &str, who: Impl, metrics: Map<String, Value>) {
        self.push(scenario, who, Ok(metrics));
    }

    pub fn err(&mut self, scenario: &str, who: Impl, error: &str) {
        self.push(scenario, who, Err(error.to_string()));
    }

    fn push(&mut self, scenario: &str, who: Impl, result: Result<Map<String, Value>, String>) {
        let mut line = Map::new();
        line.insert("scenario".into(), json!(scenario));
        line.insert("impl".into(), json!(who.as_str()));
        match &result {
            Ok(m) => line.extend(m.clone()),
            Err(e) => {
                line.insert("error".into(), json!(e));
            }
        }
        line.insert("load1".into(), json!(super::sys::loadavg()));
        println!("{}", Value::Object(line));
        self.records.push(Record {
            scenario: scenario.to_string(),
            who,
            result,
        });
    }

    /// The latest record of `scenario` for `who`.
    pub fn get(&self, scenario: &str, who: Impl) -> Option<&Record> {
        self.records
            .iter()
            .rev()
            .find(|r| r.scenario == scenario && r.who == who)
    }
}

fn f(m: &Map<String, Value>, key: &str) -> Option<f64> {
    m.get(key)?.as_f64()
}

/// A record's figures.
type Figures = Map<String, Value>;

/// A table row: how to show a record, and our target.
struct Row {
    scenario: &'static str,
    label: fn(&Params) -> String,
    /// The shown text and the figure the ratio is computed on.
    cell: fn(&Figures) -> Option<(String, f64)>,
    higher_is_better: bool,
    target: &'static str,
    met: fn(&Figures) -> Option<bool>,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            scenario: "restart_latency",
            label: |p| {
                format!(
                    "restart latency after a crash (exit → next exec), p50 / p99, {} restarts",
                    p.restart_samples
                )
            },
            cell: |m| {
                let (a, b) = (f(m, "p50_ms")?, f(m, "p99_ms")?);
                Some((format!("{a:.2} / {b:.2} ms"), a))
            },
            higher_is_better: false,
            target: "p50 < 1 ms, p99 < 5 ms",
            met: |m| Some(f(m, "p50_ms")? < 1.0 && f(m, "p99_ms")? < 5.0),
        },
        Row {
            scenario: "spawn_all_running",
            label: |p| format!("{} x `sleep`: all RUNNING from daemon launch", p.n),
            cell: |m| {
                let s = f(m, "all_running_s")?;
                Some((format!("{s:.3} s"), s))
            },
            higher_is_better: false,
            target: "< 0.5 s",
            met: |m| Some(f(m, "all_running_s")? < 0.5),
        },
        Row {
            scenario: "daemon_rss",
            label: |p| format!("daemon memory with {} children (VmRSS)", p.n),
            cell: |m| {
                let x = f(m, "rss_mib")?;
                Some((format!("{x:.1} MiB"), x))
            },
            higher_is_better: false,
            target: "< 15 MiB",
            met: |m| Some(f(m, "rss_mib")? < 15.0),
        },
        Row {
            scenario: "idle_cpu",
            label: |p| {
                format!(
                    "daemon CPU idle with {} children, per 30 s (window {} s)",
                    p.n,
                    p.idle_window.as_secs()
                )
            },
            cell: |m| {
                let x = f(m, "cpu_s_per_30s")?;
                Some((format!("{x:.2} s"), x))
            },
            higher_is_better: false,
            target: "0.00 s",
            met: |m| Some(f(m, "cpu_s_per_30s")? < 0.005),
        },
        Row {
            scenario: "status",
            label: |p| {
                format!(
                    "`status` of {} instances (client wall time, median of ≤ {})",
                    p.n, p.status_reps
                )
            },
            cell: |m| {
                let x = f(m, "cli_median_ms")?;
                Some((format!("{x:.1} ms"), x))
            },
            higher_is_better: false,
            target: "< 20 ms",
            met: |m| Some(f(m, "cli_median_ms")? < 20.0),
        },
        Row {
            scenario: "stop_all",
            label: |p| format!("stop all {} (client wall time)", p.n),
            cell: |m| {
                let x = f(m, "wall_s")?;
                Some((format!("{x:.3} s"), x))
            },
            higher_is_better: false,
            target: "< 0.3 s",
            met: |m| Some(f(m, "wall_s")? < 0.3),
        },
        Row {
            scenario: "stdout_capture",
            label: |p| {
                format!(
                    "{} MiB of child stdout captured, vs `head | cat > file`; daemon CPU",
                    p.stdout_bytes >> 20
                )
            },
            cell: |m| {
                let (pct, cpu) = (f(m, "pct_of_baseline")?, f(m, "daemon_cpu_s_per_gib")?);
                // `cat` doing the same pipe-to-file copy: the kernel's floor.
                let cat = f(m, "cat_cpu_s_per_gib")
                    .map_or(String::new(), |c| format!(" (`cat`: {c:.2})"));
                Some((format!("{pct:.0}% of pipe, {cpu:.2} s CPU/GiB{cat}"), pct))
            },
            higher_is_better: true,
            target: "≥ 95% of the pipe, CPU < 0.5 s/GiB",
            met: |m| Some(f(m, "pct_of_baseline")? >= 95.0 && f(m, "daemon_cpu_s_per_gib")? < 0.5),
        },
        Row {
            scenario: "crash_loop",
            label: |p| {
                format!(
                    "crash loop, {} programs dying every {} ms for {} s: daemon CPU per 60 s; restart p50 / p99",
                    p.crash_programs,
                    p.crash_after_ms,
                    p.crash_window.as_secs()
                )
            },
            cell: |m| {
                let (cpu, a, b) = (f(m, "cpu_s_per_60s")?, f(m, "p50_ms")?, f(m, "p99_ms")?);
                Some((format!("{cpu:.2} s; {a:.2} / {b:.2} ms"), cpu))
            },
            higher_is_better: false,
            target: "< 2 s per 60 s, restarts (p99) < 5 ms",
            met: |m| Some(f(m, "cpu_s_per_60s")? < 2.0 && f(m, "p99_ms")? < 5.0),
        },
        Row {
            scenario: "reload_200",
            label: |p| {
                format!(
                    "reload of {} programs, 1 changed, 1 added, 1 removed: converge; pids kept",
                    p.reload_small
                )
            },
            cell: |m| {
                let (ms, kept, of) = (f(m, "converge_ms")?, f(m, "kept")?, f(m, "kept_of")?);
                Some((format!("{ms:.1} ms, {kept}/{of} kept"), ms))
            },
            higher_is_better: false,
            target: "< 100 ms, all unchanged kept",
            met: |m| Some(f(m, "converge_ms")? < 100.0 && f(m, "kept")? == f(m, "kept_of")?),
        },
        Row {
            scenario: "reload_1000",
            label: |p| {
                format!(
                    "reload of {} programs with a one-program change: converge",
                    p.reload_big
                )
            },
            cell: |m| {
                let ms = f(m, "converge_ms")?;
                Some((format!("{ms:.1} ms"), ms))
            },
            higher_is_better: false,
            target: "< 100 ms",
            met: |m| Some(f(m, "converge_ms")? < 100.0),
        },
        Row {
            scenario: "scale_10000",
            label: |p| {
                format!(
                    "{} managed processes (output discarded): all RUNNING, status, RSS",
                    p.scale_n
                )
            },
            cell: |m| {
                let (s, ms, rss) = (
                    f(m, "all_running_s")?,
                    f(m, "status_cli_median_ms")?,
                    f(m, "rss_mib")?,
                );
                Some((format!("{s:.2} s, {ms:.0} ms, {rss:.1} MiB"), s))
            },
            higher_is_better: false,
            target: "< 10 s, < 100 ms, < 64 MiB",
            met: |m| {
                Some(
                    f(m, "all_running_s")? < 10.0
                        && f(m, "status_cli_median_ms")? < 100.0
                        && f(m, "rss_mib")? < 64.0,
                )
            },
        },
        Row {
            scenario: "scale_10000",
            label: |p| {
                format!(
                    "`status` of one instance while {} start: slowest answer",
                    p.scale_n
                )
            },
            cell: |m| {
                let ms = f(m, "status_during_start_max_ms")?;
                let n = f(m, "status_during_start_n")?;
                Some((format!("{ms:.0} ms ({n:.0} asked)"), ms))
            },
            higher_is_better: false,
            target: "< 100 ms",
            met: |m| Some(f(m, "status_during_start_max_ms")? < 100.0),
        },
        Row {
            scenario: "ready_tcp_1000",
            label: |p| {
                format!(
                    "{} x `listen` binding its port 200 ms after spawn, `tcp` ready probe each: all RUNNING from daemon launch",
                    p.readiness_n
                )
            },
            cell: |m| {
                let s = f(m, "all_running_s")?;
                Some((format!("{s:.3} s"), s))
            },
            higher_is_better: false,
            target: "< 1.5 s",
            met: |m| Some(f(m, "all_running_s")? < 1.5),
        },
        Row {
            scenario: "health_http_1000",
            label: |p| {
                format!(
                    "{} instances with an `http` health check every 1 s: daemon CPU per wall second ({} s window)",
                    p.readiness_n,
                    p.health_window.as_secs()
                )
            },
            cell: |m| {
                let (cpu, checks) = (f(m, "cpu_s_per_s")?, f(m, "checks_per_s")?);
                Some((format!("{cpu:.3} s/s ({checks:.0} checks/s)"), cpu))
            },
            higher_is_better: false,
            target: "< 0.05 s/s, no restart",
            met: |m| Some(f(m, "cpu_s_per_s")? < 0.05 && f(m, "restarted")? == 0.0),
        },
        Row {
            scenario: "ready_start_300ms",
            label: |p| {
                format!(
                    "`taskmasterctl start` of a program ready 300 ms after spawn (`tcp` probe), median of {}",
                    p.ready_start_reps
                )
            },
            cell: |m| {
                let ms = f(m, "median_ms")?;
                Some((format!("{ms:.0} ms"), ms))
            },
            higher_is_better: false,
            target: "300–400 ms",
            met: |m| {
                let ms = f(m, "median_ms")?;
                Some((300.0..=400.0).contains(&ms))
            },
        },
    ]
}

/// The scenario names that have a table row.
pub fn row_scenarios() -> Vec<&'static str> {
    rows().iter().map(|r| r.scenario).collect()
}

/// The Markdown table. `sv_missing` is why supervisord's column is empty,
/// if it is.
pub fn table(rec: &Recorder, params: &Params, sv_missing: Option<&str>) -> String {
    let mut out = String::from(
        "| scenario | taskmaster | supervisord | advantage (×) | our target | met? |\n\
         |---|---|---|---|---|---|\n",
    );
    for row in rows() {
        let tm = rec.get(row.scenario, Impl::Taskmaster);
        let sv = rec.get(row.scenario, Impl::Supervisord);
        if tm.is_none() && sv.is_none() {
            continue;
        }
        let show = |r: Option<&Record>, missing: Option<&str>| -> (String, Option<f64>) {
            match r.map(|r| &r.result) {
                None => (missing.map_or("not run", |_| "n/a").to_string(), None),
                Some(Err(e)) => (format!("failed: {}", short(e)), None),
                Some(Ok(m)) => match (row.cell)(m) {
                    Some((text, x)) => (text, Some(x)),
                    None => ("incomplete".into(), None),
                },
            }
        };
        let (tm_text, tm_x) = show(tm, None);
        let (sv_text, sv_x) =
            if super::scenarios::TASKMASTER_ONLY.contains(&row.scenario) && sv.is_none() {
                ("n/a (no readiness probes)".to_string(), None)
            } else {
                show(sv, sv_missing)
            };
        let ratio = match (tm_x, sv_x) {
            (Some(t), Some(s)) if t > 0.0 && s > 0.0 => {
                let r = if row.higher_is_better { t / s } else { s / t };
                format!("{r:.1}")
            }
            (Some(t), Some(s)) if t == 0.0 && s > 0.0 && !row.higher_is_better => "∞".into(),
            _ => "".into(),
        };
        let met = match tm.map(|r| &r.result) {
            Some(Ok(m)) => match (row.met)(m) {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "?",
            },
            _ => "?",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            (row.label)(params),
            tm_text,
            sv_text,
            ratio,
            row.target,
            met
        ));
    }
    out
}

fn short(e: &str) -> String {
    let line = e.lines().next().unwrap_or_default().replace('|', "/");
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(80).collect::<String>())
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_figures_ratio_and_verdict() {
        let mut rec = Recorder::default();
        let mut m = Map::new();
        m.insert("p50_ms".into(), json!(0.5));
        m.insert("p99_ms".into(), json!(6.0));
        rec.ok("restart_latency", Impl::Taskmaster, m);
        let mut m = Map::new();
        m.insert("p50_ms".into(), json!(2.0));
        m.insert("p99_ms".into(), json!(9.0));
        rec.ok("restart_latency", Impl::Supervisord, m);
        rec.err("daemon_rss", Impl::Taskmaster, "boom | bad\nmore");
        let t = table(&rec, &Params::new(true), None);
        assert!(
            t.contains(
                "| 0.50 / 6.00 ms | 2.00 / 9.00 ms | 4.0 | p50 < 1 ms, p99 < 5 ms | **no** |"
            ),
            "{t}"
        );
        assert!(t.contains("| failed: boom / bad | not run |"), "{t}");
        let mut m = Map::new();
        m.insert("median_ms".into(), json!(350.0));
        rec.ok("ready_start_300ms", Impl::Taskmaster, m);
        let t = table(&rec, &Params::new(true), None);
        assert!(
            t.contains("| 350 ms | n/a (no readiness probes) |  | 300–400 ms | yes |"),
            "{t}"
        );
        assert!(
            !t.contains("stop all"),
            "rows without records are left out:\n{t}"
        );
    }
}
