//! Log lines in the format runc (logrus) writes and containerd reads back from `--log`:
//! `{"level":"error","msg":"…","time":"…"}` per line for json, `time="…" level=… msg="…"` for
//! text. The binary installs the subscriber; this module only formats events.

use std::fmt::{self, Write as _};

use chrono::{SecondsFormat, Utc};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as runc does; `json` picks the json or the text form.
#[derive(Debug, Clone, Copy)]
pub struct RuncFormat {
    /// One JSON object per line when true, logrus text otherwise.
    pub json: bool,
}

/// logrus' name of a level.
pub fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// One log line (without the newline).
pub fn render_line(json: bool, level: &str, msg: &str, time: &str) -> String {
    if json {
        serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
    } else {
        format!("time={time:?} level={level} msg={msg:?}")
    }
}

/// Collects an event's message and its other fields as ` key=value`.
#[derive(Debug, Default)]
struct MsgVisitor {
    msg: String,
    fields: String,
}

impl Visit for MsgVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.msg, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

impl<S, N> FormatEvent<S, N> for RuncFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut v = MsgVisitor::default();
        event.record(&mut v);
        let msg = format!("{}{}", v.msg, v.fields).replace('\n', " ");
        let time = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
        let line = render_line(self.json, level_name(event.metadata().level()), &msg, &time);
        writeln!(writer, "{line}")
    }
}
