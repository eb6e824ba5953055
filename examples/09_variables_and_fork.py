"""Tutorial 4: template variables, re-resolved every turn, and forks with their own scope."""

import os
from pathlib import Path

import promptkit

PACK = Path(__file__).with_name("support.pack.json")

conv = promptkit.open(PACK, "support")
conv.set_var("role", "customer support specialist")
conv.set_vars({"company": "TechCorp", "language": "English", "customer_name": "Unknown"})
print(conv.send("Hi, my name is Bob").text)

conv.set_var("customer_name", "Bob")  # the next turn's system prompt says "Bob"
print(conv.render_system_prompt())
print(conv.send("What products do you have?").text)

os.environ["PROMPTKIT_REGION"] = "us-west"
conv.set_vars_from_env("PROMPTKIT_")  # PROMPTKIT_REGION -> variable "region"
print("region:", conv.get_var("region"), "| missing:", conv.get_var("nonexistent"))

fork = conv.fork()  # same history, its own variables
fork.set_var("customer_name", "Carol")
print(conv.get_var("customer_name"), fork.get_var("customer_name"))  # Bob Carol
print(len(conv.messages), len(fork.messages))
