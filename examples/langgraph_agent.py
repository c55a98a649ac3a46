"""A LangGraph graph with ToolNode: draw an image, then edit it, with progress streamed live.

    python -m examples.langgraph_agent

Offline by default (FakeRelay and a scripted chat model); with IMAGE_TOOL_API_KEY and
IMAGE_TOOL_BASE_URL set, a real chat model on the same relay (pip install langchain-openai).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from examples._support import chat_model, relay_settings
from examples.agent import SCRIPT
from image_tool import PROGRESS_EVENT, ImageGenerationTool


def build_graph(tool: ImageGenerationTool) -> Any:
    model = chat_model(SCRIPT).bind_tools([tool])

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode([tool]))  # default error handling: the tool never raises
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition, ["tools", END])
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=InMemorySaver())  # the conversation is kept between turns


def main() -> int:
    with relay_settings() as settings:
        tool = ImageGenerationTool(save_dir=Path("generated-images"), stream=True, **settings)
        graph = build_graph(tool)
        config: Any = {"configurable": {"thread_id": "demo", "image_tool_user": "end-user-42"}}
        for request in ["Draw a cat sleeping on a sofa.", "Make the cat wear a red hat."]:
            print(f"\nuser: {request}")
            inputs = {"messages": [HumanMessage(request)]}
            for mode, chunk in graph.stream(inputs, config, stream_mode=["custom", "updates"]):
                if mode == "custom" and PROGRESS_EVENT in chunk:
                    progress = chunk[PROGRESS_EVENT]
                    print(f"  … {progress['stage']} {progress['percent'] or ''}".rstrip())
                elif mode == "updates":
                    for update in chunk.values():
                        for message in update["messages"]:
                            if isinstance(message, ToolMessage):
                                print(f"[generate_image, {message.status}]\n{message.content}")
                            elif isinstance(message, AIMessage) and message.content:
                                print(f"assistant: {message.content}")
        tool.client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
