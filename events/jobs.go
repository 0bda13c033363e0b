package events

import (
	"context"
	"encoding/json"
	"time"

	"github.com/moby/moby/api/types/events"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// ErrDropped ends a Follow whose subscriber lagged too far behind.
var ErrDropped = errdefs.Unavailable("events: the subscriber fell too far behind and was dropped")

// FollowRequest is the env of the events job.
type FollowRequest struct {
	// Since and Until bound the events, in ParseTime's formats.
	Since string `env:"since"`
	Until string `env:"until"`
	// Filters is the JSON filter object of the Docker API.
	Filters string `env:"filters"`
}

// PublishRequest is the env of the log job; its args are ACTION ID [FROM].
type PublishRequest struct {
	// Type is the event type; "daemon" when empty.
	Type string `env:"type"`
	// Attributes are extra actor attributes.
	Attributes map[string]string `env:"attributes"`
}

// CountReply is the reply of the subscribers_count job.
type CountReply struct {
	Count int `json:"count"`
}

// Install registers the events, log and subscribers_count jobs.
func (l *Log) Install(eng *engine.Engine) error {
	for _, d := range []engine.Descriptor{
		{
			Name:    "events",
			Help:    "Stream events as JSON lines: history since a time, then live ones until a time",
			Request: FollowRequest{},
			// A follower has no end of its own; shutdown ends it.
			Interruptible: true,
			Handler:       l.jobFollow,
		},
		{
			Name:    "log",
			Help:    "Publish an event: ACTION ID [FROM]",
			Request: PublishRequest{},
			Reply:   events.Message{},
			Mutates: true,
			Handler: l.jobPublish,
		},
		{
			Name:    "subscribers_count",
			Help:    "Count the clients following the events",
			Reply:   CountReply{},
			Handler: l.jobCount,
		},
	} {
		if err := eng.Register(d); err != nil {
			return err
		}
	}
	return nil
}

func (l *Log) jobFollow(ctx context.Context, job *engine.Job) error {
	var req FollowRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 0 {
		return errdefs.InvalidArgument("usage: events (no arguments; use since, until and filters)")
	}
	now := l.now()
	since, err := ParseTime(req.Since, now)
	if err != nil {
		return err
	}
	until, err := ParseTime(req.Until, now)
	if err != nil {
		return err
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		return errdefs.InvalidArgument("until (%s) is before since (%s)", req.Until, req.Since)
	}
	f, err := ParseFilter(req.Filters)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(job.Stdout)
	// The headers go out at once, so a client sees the stream open before
	// the first event.
	job.Stdout.Flush()
	return l.Follow(ctx, since, until, f, func(m events.Message) error {
		if err := enc.Encode(m); err != nil {
			return err
		}
		job.Stdout.Flush()
		return nil
	})
}

func (l *Log) jobPublish(_ context.Context, job *engine.Job) error {
	var req PublishRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) < 2 || len(job.Args) > 3 {
		return errdefs.InvalidArgument("usage: log ACTION ID [FROM]")
	}
	typ := events.Type(req.Type)
	if typ == "" {
		typ = events.DaemonEventType
	}
	attrs := map[string]string{}
	for k, v := range req.Attributes {
		attrs[k] = v
	}
	if len(job.Args) == 3 {
		attrs["image"] = job.Args[2]
	}
	m := events.Message{
		Type:   typ,
		Action: events.Action(job.Args[0]),
		Actor:  events.Actor{ID: job.Args[1], Attributes: attrs},
		Scope:  "local",
	}
	m.TimeNano = l.now().UnixNano()
	m.Time = m.TimeNano / int64(time.Second)
	l.Publish(m)
	job.Reply(m)
	return nil
}

func (l *Log) jobCount(_ context.Context, job *engine.Job) error {
	if len(job.Args) != 0 || len(job.Env) != 0 {
		return errdefs.InvalidArgument("usage: subscribers_count")
	}
	job.Reply(CountReply{Count: l.SubscribersCount()})
	return nil
}
