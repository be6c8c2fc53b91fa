// Package platform adapts the runtimes mdefn runs on (the Azure Functions
// custom handler, AWS Lambda and a plain local HTTP server) to the functions'
// http.Handlers. It knows nothing about Defender.
//
// Every delivery becomes one *http.Request to the function's handler:
// HTTP events keep their method, path, query, headers and body; non-HTTP
// deliveries (Azure Storage queue, Service Bus and Event Grid messages, AWS
// SQS records, EventBridge events and direct Lambda invokes) become
// POST /api/<function> with the request JSON as body. The request context
// carries an invocation.Info naming the invocation and its trigger, and a
// deadline: the Lambda invocation's deadline minus LambdaSafetyMargin where
// the platform gives one, else App.Timeout.
//
// The handler's answer alone decides the outcome (see Classify): 2xx is a
// success; 5xx and 429 are retryable, except the error code
// isolation_budget_exceeded; everything else is permanent.
package platform
