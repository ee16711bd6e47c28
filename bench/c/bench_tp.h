/* LTTng-UST 2.13 tracepoint provider of the usertrace benchmark suite.
 * bench:three carries the suite's payload (a uint64, a uint32, a 16-byte
 * string); bench:blob a byte sequence, for the payload-size runs. */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER bench

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./bench_tp.h"

#if !defined(BENCH_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define BENCH_TP_H

#include <stddef.h>
#include <stdint.h>
#include <lttng/tracepoint.h>

LTTNG_UST_TRACEPOINT_EVENT(bench, three,
	LTTNG_UST_TP_ARGS(uint64_t, a, uint32_t, b, const char *, s),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, a, a)
		lttng_ust_field_integer(uint32_t, b, b)
		lttng_ust_field_string(s, s)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(bench, blob,
	LTTNG_UST_TP_ARGS(const uint8_t *, data, size_t, len),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_sequence(uint8_t, data, data, size_t, len)
	)
)

#endif /* BENCH_TP_H */

#include <lttng/tracepoint-event.h>
