package userevents

// Constants and structures of the Linux user_events ABI, mirrored from
// include/uapi/linux/user_events.h (Linux 6.4 and later; read against
// linux-source-6.12). Keep them in step with that header by hand: it only
// ever grows.

const (
	// systemName is USER_EVENTS_SYSTEM: the tracefs events/ directory of
	// single-format events.
	systemName = "user_events"
	// multiSystemName is USER_EVENTS_MULTI_SYSTEM: the directory of events
	// registered with regMultiFormat (their names get a ".<hex id>" suffix).
	multiSystemName = "user_events_multi"

	// regPersist is USER_EVENT_REG_PERSIST: the event outlives the last
	// close of its registrations (needs CAP_PERFMON).
	regPersist = 1 << 0
	// regMultiFormat is USER_EVENT_REG_MULTI_FORMAT (Linux 6.10): events of
	// one name may have several formats.
	regMultiFormat = 1 << 1

	// The ioctl numbers: _IOWR('*', 0, struct user_reg *),
	// _IOW('*', 1, char *) and _IOW('*', 2, struct user_unreg *). The size
	// field of each is that of a pointer (8 bytes), not of the structure:
	// the header passes pointer types to the macros.
	diagIOCSREG   = 3<<30 | 8<<16 | '*'<<8 | 0
	diagIOCSDEL   = 1<<30 | 8<<16 | '*'<<8 | 1
	diagIOCSUNREG = 1<<30 | 8<<16 | '*'<<8 | 2

	// maxEventDesc is MAX_EVENT_DESC in kernel/trace/trace_events_user.c:
	// the longest "name fields" string the kernel accepts, with its NUL.
	maxEventDesc = 512
)

// userReg is struct user_reg, __attribute__((packed)): 28 bytes, whose
// fields happen to sit at their natural offsets. Go pads it to 32; the size
// given to the kernel is userRegSize.
type userReg struct {
	size       uint32 // input: userRegSize
	enableBit  uint8  // input: the bit of the enable word the kernel sets
	enableSize uint8  // input: 4 (a uint32 word)
	flags      uint16 // input: regPersist | regMultiFormat
	enableAddr uint64 // input: address of the enable word
	nameArgs   uint64 // input: address of the NUL-terminated "name fields"
	writeIndex uint32 // output: the index that starts each write
}

const userRegSize = 28

// userUnreg is struct user_unreg: 16 bytes.
type userUnreg struct {
	size        uint32 // userUnregSize
	disableBit  uint8
	_           uint8
	_           uint16
	disableAddr uint64
}

const userUnregSize = 16
