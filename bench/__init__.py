"""quizroom.bench"""
