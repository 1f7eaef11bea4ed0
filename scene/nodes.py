"""Node-tree helpers shared by the world and material writers: find or make our nodes, never the user's."""

import bpy

# Our nodes carry this prefix in their name, so re-applying swaps them in place and leaves the user's alone.
PREFIX = "Promptscape "


def ensure_node_tree(idblock):
    """The node tree of a world or material, turning nodes on where Blender 4.x still needs it."""
    if idblock.node_tree is None or (bpy.app.version < (5, 0, 0) and not idblock.use_nodes):
        idblock.use_nodes = True
    return idblock.node_tree


def ours(tree, role: str, bl_idname: str, location: tuple[float, float]):
    """Our node for `role` in `tree`: the one made earlier, else a new one."""
    name = PREFIX + role
    node = tree.nodes.get(name)
    if node is not None and node.bl_idname != bl_idname:
        tree.nodes.remove(node)
        node = None
    if node is None:
        node = tree.nodes.new(bl_idname)
        node.name = name
        node.label = role
        node.location = location
    return node


def output_node(tree, bl_idname: str, location: tuple[float, float]):
    """The node of that type the tree uses (the active one, for outputs), or a new one when it has none."""
    found = [node for node in tree.nodes if node.bl_idname == bl_idname]
    for node in found:
        if getattr(node, "is_active_output", False):
            return node
    if found:
        return found[0]
    node = tree.nodes.new(bl_idname)
    node.location = location
    return node


def link(tree, from_socket, to_socket):
    """Connect two sockets, replacing whatever fed `to_socket` (the user's node stays, just unlinked)."""
    for old in list(to_socket.links):
        tree.links.remove(old)
    tree.links.new(from_socket, to_socket)


def follow_world_rotation(obj, world, offset: float | None = None) -> None:
    """A driver on `obj`'s Z rotation: minus our Mapping node's Z rotation in `world`, plus `offset`
    radians. The Mapping node rotates the lookup vector, so the picture, and what stands for something
    in it (the world mesh, the Sun lamp), turns the other way."""
    obj.driver_remove("rotation_euler", 2)
    driver = obj.driver_add("rotation_euler", 2).driver
    driver.type = "SCRIPTED"
    variable = driver.variables.new()
    variable.name = "turn"
    variable.targets[0].id_type = "WORLD"
    variable.targets[0].id = world
    variable.targets[0].data_path = f'node_tree.nodes["{PREFIX}Mapping"].inputs["Rotation"].default_value[2]'
    # A simple expression: Blender evaluates it without running Python.
    driver.expression = "-turn" if offset is None else f"{offset:.6f} - turn"
