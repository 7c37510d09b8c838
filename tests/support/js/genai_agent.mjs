// An agent's spans as the OpenTelemetry JS SDK records them under the latest GenAI semantic conventions,
// exported over OTLP/HTTP protobuf: node genai_agent.mjs OTLP_URL CONVERSATION_ID
// invoke_agent -> chat (asks for a tool) -> execute_tool -> chat (answers). The conversation id names the
// journey (gen_ai.conversation.id); the journey's stage comes from journeyscope's own attribute.
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { context, diag, DiagLogLevel, trace } from "@opentelemetry/api";

// A span the exporter could not deliver (a timeout, a refusal) reaches only the SDK's diagnostic logger: say so
// and fail, so a test sees why a span is missing rather than a transcript without it.
diag.setLogger({
  error: (...args) => { console.error("OpenTelemetry error:", ...args); process.exitCode = 1; },
  warn: (...args) => console.error("OpenTelemetry warning:", ...args),
  info: () => {}, debug: () => {}, verbose: () => {},
}, DiagLogLevel.WARN);

const [url, conversation] = process.argv.slice(2);
const provider = new BasicTracerProvider({
  spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${url}/v1/traces` }))],
});
const tracer = provider.getTracer("genai-agent");
const journey = { "gen_ai.conversation.id": conversation, "journey.stage": "delivery", "journey.name": "support" };
const system = [{ type: "text", content: "You are a support agent for a parcel company." }];
const user = { role: "user", parts: [{ type: "text", content: "My order A17 has not arrived" }] };
const call = { type: "tool_call", id: "call_1", name: "order_status", arguments: { order_id: "A17" } };
const asked = { role: "assistant", parts: [call] };
const result = { role: "tool", parts: [{ type: "tool_call_response", id: "call_1", response: "shipped yesterday" }] };
const answer = { role: "assistant", parts: [{ type: "text", content: "It shipped yesterday and arrives today." }] };

function span(name, attributes, parent, body) {
  const s = tracer.startSpan(name, { attributes: { ...journey, ...attributes } }, parent);
  const inner = trace.setSpan(parent, s);
  if (body) body(inner);
  s.end();
}

span("invoke_agent support", {
  "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
  "gen_ai.input.messages": JSON.stringify([user]), "gen_ai.output.messages": JSON.stringify([answer]),
}, context.active(), (agent) => {
  span("chat stand-in", {
    "gen_ai.operation.name": "chat", "gen_ai.system_instructions": JSON.stringify(system),
    "gen_ai.input.messages": JSON.stringify([user]), "gen_ai.output.messages": JSON.stringify([asked]),
  }, agent);
  span("execute_tool order_status", {
    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "order_status",
    "gen_ai.tool.call.id": "call_1", "gen_ai.tool.call.arguments": '{"order_id": "A17"}',
    "gen_ai.tool.call.result": "shipped yesterday",
  }, agent);
  span("chat stand-in", {
    "gen_ai.operation.name": "chat", "gen_ai.system_instructions": JSON.stringify(system),
    "gen_ai.input.messages": JSON.stringify([user, asked, result]), "gen_ai.output.messages": JSON.stringify([answer]),
  }, agent);
});
await provider.shutdown();
