// Package invocation carries what the runtime adapters know about one
// invocation (its ID and the trigger that delivered it) to the functions,
// through the request context. It knows nothing about Defender.
package invocation

import "context"

// Trigger names the kind of delivery that started an invocation.
type Trigger string

// Triggers recognised by the runtime adapters.
const (
	HTTP        Trigger = "http"        // an HTTP request from a caller (webhook rules apply)
	Queue       Trigger = "queue"       // Azure Storage queue message
	ServiceBus  Trigger = "servicebus"  // Azure Service Bus message
	EventGrid   Trigger = "eventgrid"   // Azure Event Grid event (data is the request)
	SQS         Trigger = "sqs"         // AWS SQS record
	EventBridge Trigger = "eventbridge" // AWS EventBridge event (detail is the request)
	Direct      Trigger = "direct"      // direct Lambda invoke (Step Functions)
	Other       Trigger = "other"       // any other non-HTTP trigger
)

// PlatformAuthenticated reports whether the platform itself authenticated the
// delivery, so that the webhook signature is not required (queue, SQS and EventBridge deliveries).
func (t Trigger) PlatformAuthenticated() bool { return t != HTTP && t != "" }

// Info describes one invocation.
type Info struct {
	ID      string  // invocation ID from the platform (Lambda request ID, Azure invocation ID) or generated
	Trigger Trigger // how the request arrived
	// Notes, when set by the adapter, receive what the handlers learn
	// about the invocation, for the adapter's own log line.
	Notes *Notes
}

// Notes are what an invocation's handlers tell its adapter.
type Notes struct {
	// Tenant is the label of the tenant the request ran for (multi-tenant
	// deployments); Resolved is false when the request's tenant was
	// refused or unreadable.
	Tenant   string
	Resolved bool
}

type key struct{}

// With returns a copy of ctx carrying info.
func With(ctx context.Context, info Info) context.Context {
	return context.WithValue(ctx, key{}, info)
}

// From returns the Info carried by ctx; the zero Info (Trigger "") means a
// plain HTTP request with no adapter in front.
func From(ctx context.Context) Info {
	info, _ := ctx.Value(key{}).(Info)
	return info
}

type tenantKey struct{}

// WithTenant returns a copy of ctx naming the tenant (its label) a request
// of a multi-tenant deployment runs for.
func WithTenant(ctx context.Context, tenant string) context.Context {
	if n := From(ctx).Notes; n != nil {
		n.Tenant, n.Resolved = tenant, true
	}
	return context.WithValue(ctx, tenantKey{}, tenant)
}

// Tenant returns the tenant WithTenant set, "" in a single-tenant
// deployment. Links an answer hands out (Location) name it, so that the
// follow-up request reaches the same tenant.
func Tenant(ctx context.Context) string {
	t, _ := ctx.Value(tenantKey{}).(string)
	return t
}
