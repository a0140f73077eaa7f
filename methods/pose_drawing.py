"""Moved to :mod:`actionbench.pose_drawing` (the world's skeletons and the ControlNet baseline
both draw with it); this name is kept so ``methods.pose_drawing`` imports keep working."""

from actionbench.pose_drawing import (  # noqa: F401
                                      COLORS,
                                      LIMBS,
                                      MIN_CANVAS,
                                      STICK_WIDTH,
                                      Keypoints,
                                      draw_openpose,
                                      draw_skeleton,
                                      given_pose_image,
                                      letterbox,
                                      letterbox_keypoints,
                                      mediapipe_keypoints,
                                      openpose_detector,
                                      pose_image,
                                      skeleton_image,
)
