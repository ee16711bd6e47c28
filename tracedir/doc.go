// Package tracedir reads the trace directories that usertrace writes, and
// writes them out as text ([WriteText]) or JSON lines ([WriteJSON]) fast
// enough to page through millions of events in seconds.
//
// A trace directory is one app's ring in one session (written by the
// daemon, package daemon):
//
//	metadata                CTF 1.8 TSDL (for babeltrace2 and other CTF readers)
//	stream_<shard>          the shard's CTF packets back to back (layout: package ctf)
//	.usertrace/catalog      the session's events, catalog encoding, ID = session-local id
//	.usertrace/trace.json   uuid, clock offset, app, pid, session, shards ([Info])
//
// The hidden sidecar lets usertrace's own tools skip parsing TSDL; CTF
// readers ignore it. [WriteSidecar] writes it.
//
// Every file is treated as hostile. Open decodes the catalog with the
// hostile-safe decoder and bounds every size; a [Reader] reads streams a
// packet at a time with pread (never a whole file, never a mapping that a
// truncation could turn into a fault), checks each packet with
// ctf.ParsePacketHeader and walks it with a ctf.Walker (the checks of
// ctf.Events, an event at a time, as the merge asks). A malformed packet is
// counted, described in [Stats] and skipped: after a bad header the reader
// looks for the next magic number followed by the trace's uuid. Nothing
// read from a file can make the package panic (FuzzStream).
//
// # Performance
//
// The text writer formats each event from a per-description plan compiled
// once (byte-identical to catalog.Record.AppendText, which it falls back
// to), writes digits eight at a time, caches the date text per second, and
// writes through one 256 KiB buffer, on the caller's goroutine. Figures and the commands behind them are in docs/view.md.
package tracedir
