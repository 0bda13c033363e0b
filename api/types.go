package api

import "example.org/ctr/api/wire"

// The bodies of ctr's own endpoints; see package wire, which clients use.
type (
	// JobsResponse is the reply of GET /ctr/v1/jobs.
	JobsResponse = wire.JobsResponse
	// HandlerInfo describes a registered job.
	HandlerInfo = wire.HandlerInfo
	// RunJobRequest is the body of POST /ctr/v1/jobs/{name}.
	RunJobRequest = wire.RunJobRequest
	// RunJobResponse is the reply of POST /ctr/v1/jobs/{name}.
	RunJobResponse = wire.RunJobResponse
)

// MaxCapture is how much of each of a job's streams POST
// /ctr/v1/jobs/{name} keeps.
const MaxCapture = wire.MaxCapture
