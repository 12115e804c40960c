"""DMX nodes: lights driven straight over the network (dmx.out: sACN and Art-Net)."""
