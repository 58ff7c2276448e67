"""quizroom.rooms"""
