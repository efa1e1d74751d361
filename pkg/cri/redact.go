package cri

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// redacted replaces a secret in logs.
const redacted = "<redacted>"

// secretFields are the CRI fields that carry credentials (AuthConfig) — replaced
// wherever they appear.
var secretFields = map[protoreflect.Name]bool{
	"password": true, "auth": true, "identity_token": true, "registry_token": true,
}

// redact returns a copy of a CRI message fit for a log line: registry credentials
// and container environment values (kubelet fills them from Secrets) are replaced.
// Anything that is not a protobuf message is returned as is.
func redact(v any) any {
	m, ok := v.(proto.Message)
	if !ok || m == nil {
		return v
	}
	c := proto.Clone(m)
	scrub(c.ProtoReflect(), false)
	return c
}

// scrub clears secrets in m; envValue says m is an environment entry (KeyValue of
// an envs list), whose value is a secret.
func scrub(m protoreflect.Message, envValue bool) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() == protoreflect.StringKind && !fd.IsList() && !fd.IsMap() && (secretFields[fd.Name()] || (envValue && fd.Name() == "value")):
			if v.String() != "" {
				m.Set(fd, protoreflect.ValueOfString(redacted))
			}
		case fd.Kind() == protoreflect.BytesKind && !fd.IsList() && envValue && fd.Name() == "value":
			if len(v.Bytes()) > 0 {
				m.Set(fd, protoreflect.ValueOfBytes([]byte(redacted)))
			}
		case fd.Kind() == protoreflect.MessageKind && fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				scrub(l.Get(i).Message(), fd.Name() == "envs")
			}
		case fd.Kind() == protoreflect.MessageKind && fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					scrub(mv.Message(), false)
					return true
				})
			}
		case fd.Kind() == protoreflect.MessageKind:
			scrub(v.Message(), false)
		}
		return true
	})
}
