// Command bootstrap is the AWS Lambda bootstrap (provided.al2023) of the
// indicators function. Build it with -tags lambda.norpc (make build).
package main

import "github.com/mdefn/mdefn/internal/wiring"

func main() { wiring.Main("indicators") }
