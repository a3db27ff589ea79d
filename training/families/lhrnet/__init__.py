"""``lhrnet``, training part: Lite-HRNet-18 + LiteFPN two-keypoint localiser (a part and its slot, and their angle).

Not registered yet: the family registers in every layer at once, when its export exists.
"""
