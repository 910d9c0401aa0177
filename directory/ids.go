package directory

// IDForm says what ValidID accepts, for messages that refuse an id.
const IDForm = "1–256 characters of [A-Za-z0-9._@:-]"

// ValidID reports whether id is a well-formed object id: 1–256 characters of [A-Za-z0-9._@:-] (SPEC §2).
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '@', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// Everyone is the published_to entry that publishes a label to the whole tenant.
const Everyone = "*"
